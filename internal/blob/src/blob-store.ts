/** Content-addressed storage: code bundles, large payloads, later image layers and volume files. */
export interface BlobStore {
  /** Stores bytes and returns their sha256 (hex). Storing the same bytes twice is free. */
  put(bytes: Uint8Array): Promise<string>;
  get(hash: string): Promise<Uint8Array | undefined>;
  has(hash: string): Promise<boolean>;
}

export class BlobError extends Error {
  readonly code: "BLOB_BAD_HASH" | "BLOB_CORRUPT";
  constructor(code: BlobError["code"], message: string) {
    super(message);
    this.name = "BlobError";
    this.code = code;
  }
}

const HASH = /^[0-9a-f]{64}$/;

export function assertHash(hash: string): void {
  if (!HASH.test(hash)) throw new BlobError("BLOB_BAD_HASH", `"${hash}" is not a sha256 hex digest`);
}
