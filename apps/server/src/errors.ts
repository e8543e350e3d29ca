import type { ErrorCode } from "@skiff/protocol";

/** An API error: `code` picks the HTTP status, `message` tells the caller what to do next. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ApiError";
    this.code = code;
  }
}
