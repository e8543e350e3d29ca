import { Decoder, Encoder } from "cbor-x";

// Records off: plain maps on the wire, so any peer can read a frame without shared structure state.
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

/** Encodes a protocol message (not a user payload: those use the SDK codec) as CBOR. */
export function encodeMessage(message: unknown): Uint8Array {
  return encoder.encode(message);
}

export function decodeMessage(bytes: Uint8Array): unknown {
  return decoder.decode(bytes);
}

/** Splits a byte stream into length-prefixed (uint32 big-endian) frames. */
export class FrameReader {
  private buffer: Buffer<ArrayBufferLike> = Buffer.alloc(0);

  push(chunk: Buffer): Uint8Array[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Uint8Array[] = [];
    while (this.buffer.length >= 4) {
      const length = this.buffer.readUInt32BE(0);
      if (this.buffer.length < 4 + length) break;
      frames.push(this.buffer.subarray(4, 4 + length));
      this.buffer = this.buffer.subarray(4 + length);
    }
    return frames;
  }
}

export function lengthPrefixed(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}
