import { Decoder, Encoder } from "cbor-x";

// Records off: plain maps on the wire, so any peer can read a frame without shared structure state.
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** Encodes a protocol message (not a user payload: those use the SDK codec) as CBOR. */
export function encodeMessage(message: unknown): Uint8Array {
  return releasingLarge(encoder, encoder.encode(message));
}

/**
 * An encoding, after which a large one's buffer is let go: cbor-x keeps writing later (small) encodings
 * into the buffer it grew, and would keep a payload-sized buffer alive, and allocate another of that size,
 * for as long as the process runs.
 */
export function releasingLarge(cbor: Encoder, encoded: Uint8Array): Uint8Array {
  // useBuffer is cbor-x's, missing from its types.
  if (encoded.length > LARGE_ENCODING) (cbor as Encoder & CborBuffer).useBuffer(Buffer.allocUnsafeSlow(8192));
  return encoded;
}

const LARGE_ENCODING = 1024 * 1024;

interface CborBuffer {
  useBuffer(buffer: Uint8Array): void;
}

export function decodeMessage(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}

/**
 * Splits a byte stream into length-prefixed (uint32 big-endian) frames. The pieces of a frame are joined
 * once it is whole: joining at every piece would copy a large frame once per piece.
 */
export class FrameReader {
  private pieces: Buffer[] = [];
  private buffered = 0;
  /** Bytes needed before the next frame (or its header) is whole. */
  private needed = 4;

  push(chunk: Buffer): Uint8Array[] {
    this.pieces.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.needed) return [];
    let buffer = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.buffered);
    const frames: Uint8Array[] = [];
    while (buffer.length >= 4) {
      const length = buffer.readUInt32BE(0);
      if (buffer.length < 4 + length) break;
      frames.push(buffer.subarray(4, 4 + length));
      buffer = buffer.subarray(4 + length);
    }
    this.pieces = buffer.length > 0 ? [buffer] : [];
    this.buffered = buffer.length;
    this.needed = buffer.length >= 4 ? 4 + buffer.readUInt32BE(0) : 4;
    return frames;
  }
}

export function lengthPrefixed(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

/**
 * Writes frames to a socket in one go (a single syscall matters under gVisor), each as its header and its
 * bytes: a large payload is not copied to sit behind its header.
 */
export function writeFrames(
  socket: { cork(): void; uncork(): void; write(bytes: Uint8Array): boolean },
  frames: Uint8Array[],
): void {
  socket.cork();
  for (const bytes of frames) {
    const header = Buffer.alloc(4);
    header.writeUInt32BE(bytes.length, 0);
    socket.write(header);
    socket.write(bytes);
  }
  socket.uncork();
}

/** A platform failure (not the user's error) as a result payload: the SDK turns it into a CallError with this message. */
export function failurePayload(message: string): Uint8Array {
  return encodeMessage({ message });
}
