import { BlobError } from "@skiff/blob";
import { CodedError, type ErrorCode } from "@skiff/protocol";
import { SecretError, TokenError } from "@skiff/store";

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

/**
 * An error as the API reports it: its own, a store's refusal (whose message never holds a secret value),
 * or INTERNAL. A secret the store cannot open (UNREADABLE: tampered, or sealed with another master key)
 * is the server's trouble, not the caller's; so is a blob corrupt on disk.
 */
export function apiErrorOf(error: Error): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof SecretError || error instanceof TokenError) {
    return new ApiError(error.code === "UNREADABLE" ? "INTERNAL" : error.code, error.message, { cause: error });
  }
  if (error instanceof BlobError) {
    const code =
      error.code === "BLOB_CORRUPT"
        ? "INTERNAL"
        : error.code === "BLOB_TOO_LARGE"
          ? "PAYLOAD_TOO_LARGE"
          : "BAD_REQUEST";
    return new ApiError(code, error.message, { cause: error });
  }
  return new ApiError("INTERNAL", error.message, { cause: error });
}
