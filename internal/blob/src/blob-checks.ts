import { createHash, type Hash } from "node:crypto";
import { type Readable, Transform } from "node:stream";
import { BlobError, type ExpectedBlob } from "./blob-store.js";
import { formatBytes } from "./format-bytes.js";

const READ_AHEAD_BYTES = 8 << 20;

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Checks a blob's bytes as they arrive against what the sender said they are: `add` refuses a piece past
 * the declared size or the limit, `finish` a total or a hash that does not match.
 */
export class ArrivingBlob {
  private readonly hasher: Hash = createHash("sha256");
  private readonly limit: number;
  private received = 0;

  constructor(private readonly expected: ExpectedBlob) {
    const { size, maxBytes } = expected;
    if (size !== undefined && size > maxBytes) throw tooLarge(maxBytes);
    this.limit = size ?? maxBytes;
  }

  add(chunk: Uint8Array): void {
    const { size, maxBytes } = this.expected;
    this.received += chunk.length;
    if (this.received > this.limit)
      throw size === undefined ? tooLarge(maxBytes) : mismatch(`more than the ${size} bytes declared`);
    this.hasher.update(chunk);
  }

  finish(): void {
    const { hash, size } = this.expected;
    if (size !== undefined && this.received !== size)
      throw mismatch(`${this.received} bytes, not the ${size} declared`);
    const actual = this.hasher.digest("hex");
    if (actual !== hash) throw mismatch(`sha256 ${actual}, not the ${hash} its URL names`);
  }
}

/**
 * A stored blob's bytes, passed on as they are read and hashed; the stream fails with `corrupt()` at its end
 * if they no longer match `hash`.
 */
export function checkedReader(stored: Readable, hash: string, corrupt: () => BlobError): Readable {
  const hasher = createHash("sha256");
  // The last piece is held back until the whole blob is known good: bytes changed in storage fail the
  // stream short of its size, so a reader never takes them as whole.
  let held: Buffer | undefined;
  const check = new Transform({
    // Reading and hashing go on while the reader takes earlier pieces: with the default 16 KiB, reading the
    // blob, hashing and sending took turns.
    highWaterMark: READ_AHEAD_BYTES,
    transform(chunk: Buffer, _encoding, callback) {
      hasher.update(chunk);
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback) {
      if (hasher.digest("hex") !== hash) {
        callback(corrupt());
        return;
      }
      callback(null, held);
    },
  });
  stored.on("error", (error) => check.destroy(error));
  // A reader that gives up early must not leave the stored stream (a file, a socket) open.
  check.on("close", () => stored.destroy());
  return stored.pipe(check);
}

export function tooLarge(maxBytes: number): BlobError {
  return new BlobError("BLOB_TOO_LARGE", `a blob may have at most ${formatBytes(maxBytes)} (${maxBytes} bytes)`);
}

export function mismatch(what: string): BlobError {
  return new BlobError("BLOB_MISMATCH", `the blob's bytes do not match: ${what}; upload the bytes you hashed`);
}
