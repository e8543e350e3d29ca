import type { Readable } from "node:stream";
import { CodedError } from "@skiff/protocol/coded-error";

/** What `putStream` checks the bytes against while they arrive. */
export interface ExpectedBlob {
  /** The sha256 (hex) the bytes must have. */
  hash: string;
  /** The size the sender declared, when it did: fewer or more bytes are refused. */
  size?: number | undefined;
  /** The most bytes taken when no size is declared (and the most a declared size may say). */
  maxBytes: number;
}

/** A stored blob as a stream: its size first, then its bytes, checked against its hash as they are read. */
export interface BlobReader {
  size: number;
  stream: Readable;
}

/** Content-addressed storage: code bundles, large payloads, later image layers and volume files. */
export interface BlobStore {
  /** Stores bytes and returns their sha256 (hex). Storing the same bytes twice is free. */
  put(bytes: Uint8Array): Promise<string>;
  /**
   * Stores bytes as they arrive, never holding them all in memory, and only if they match `expected`:
   * otherwise nothing is kept and a BlobError says why.
   */
  putStream(source: AsyncIterable<Uint8Array>, expected: ExpectedBlob): Promise<string>;
  get(hash: string): Promise<Uint8Array | undefined>;
  /** The blob as a stream; the stream fails at its end if the stored bytes no longer match the hash. */
  getStream(hash: string): Promise<BlobReader | undefined>;
  has(hash: string): Promise<boolean>;
}

/** BLOB_UNAVAILABLE: the storage behind the store failed or refused (a bucket that is missing, say). */
export class BlobError extends CodedError<
  "BLOB_BAD_HASH" | "BLOB_CORRUPT" | "BLOB_MISMATCH" | "BLOB_TOO_LARGE" | "BLOB_UNAVAILABLE"
> {
  constructor(code: BlobError["code"], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "BlobError";
  }
}

const HASH = /^[0-9a-f]{64}$/;

export function assertHash(hash: string): void {
  if (!HASH.test(hash)) throw new BlobError("BLOB_BAD_HASH", `"${hash}" is not a sha256 hex digest`);
}
