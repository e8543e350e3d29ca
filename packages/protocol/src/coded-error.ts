import type { ErrorCode } from "./error-code.js";

/**
 * The base of the packages' errors that say what kind they are: `code` (an ErrorCode, or a package's own
 * codes) tells the platform what to do with it, the message tells a person what to do next.
 * @example
 * class ApiError extends CodedError {}
 * throw new ApiError("NOT_FOUND", "no app named web: deploy it first");
 */
export class CodedError<Code extends string = ErrorCode> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CodedError";
    this.code = code;
  }
}
