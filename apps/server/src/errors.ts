import type { ErrorCode } from "@skiff/protocol";
import { SecretError, TokenError } from "@skiff/store";

/** An API error: `code` picks the HTTP status, `message` tells the caller what to do next. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ApiError";
    this.code = code;
  }
}

/**
 * An error as the API reports it: its own, a store's refusal (whose message never holds a secret value),
 * or INTERNAL. A secret the store cannot open (UNREADABLE: tampered, or sealed with another master key)
 * is the server's trouble, not the caller's.
 */
export function apiErrorOf(error: Error): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof SecretError || error instanceof TokenError) {
    return new ApiError(error.code === "UNREADABLE" ? "INTERNAL" : error.code, error.message, { cause: error });
  }
  return new ApiError("INTERNAL", error.message, { cause: error });
}
