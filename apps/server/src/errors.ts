import { BlobError } from "@skiff/blob";
import { CodedError, type ErrorCode } from "@skiff/protocol";
import { SecretError, TokenError, VolumeError } from "@skiff/store";

/** An API error: `code` picks the HTTP status, `message` tells the caller what to do next. */
export class ApiError extends CodedError {
  /** For PAYLOAD_TOO_LARGE: the most bytes the route takes. */
  readonly limit: number | undefined;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; limit?: number }) {
    super(code, message, options);
    this.name = "ApiError";
    this.limit = options?.limit;
  }

  /** The API's error body: `{ error: { code, message } }`, and `limit` on a 413. */
  body(): { error: { code: ErrorCode; message: string; limit?: number } } {
    return {
      error: { code: this.code, message: this.message, ...(this.limit === undefined ? {} : { limit: this.limit }) },
    };
  }
}

/** The API's code for each blob store error; a Record so a new one cannot be forgotten here. */
const BLOB_ERROR_CODES: Record<BlobError["code"], ErrorCode> = {
  BLOB_BAD_HASH: "BAD_REQUEST",
  BLOB_MISMATCH: "BAD_REQUEST",
  BLOB_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  BLOB_CORRUPT: "INTERNAL",
  BLOB_UNAVAILABLE: "UNAVAILABLE",
};

/**
 * An error as the API reports it: its own, a store's refusal (whose message never holds a secret value),
 * or INTERNAL. A secret the store cannot open (UNREADABLE: tampered, or sealed with another master key)
 * is the server's trouble, not the caller's; so is a blob corrupt on disk, or a blob store out of reach.
 */
export function apiErrorOf(error: Error): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof SecretError || error instanceof TokenError) {
    return new ApiError(error.code === "UNREADABLE" ? "INTERNAL" : error.code, error.message, { cause: error });
  }
  if (error instanceof VolumeError) return new ApiError(error.code, error.message, { cause: error });
  if (error instanceof BlobError) {
    return new ApiError(BLOB_ERROR_CODES[error.code], error.message, { cause: error });
  }
  return new ApiError("INTERNAL", error.message, { cause: error });
}
