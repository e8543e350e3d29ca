import type { ErrorCode } from "@skiff/protocol";
import { CodedError } from "@skiff/protocol/coded-error";

/** Base class of errors the SDK raises; `code` says what kind, the message says what to do next. */
export class SkiffError extends CodedError {
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "SkiffError";
  }
}

const NON_RETRIABLE = Symbol.for("skiff.nonRetriable");

/**
 * Throw this from a function to fail the input at once, without using its retries.
 * @example
 * if (!user) throw new NonRetriableError(`no user ${id}`);
 */
export class NonRetriableError extends Error {
  readonly [NON_RETRIABLE] = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetriableError";
  }
}

/** True for NonRetriableError from any copy of the SDK (user bundles carry their own copy). */
export function isNonRetriable(error: unknown): boolean {
  return typeof error === "object" && error !== null && (error as Record<symbol, unknown>)[NON_RETRIABLE] === true;
}

/** A call that did not finish because of the platform (timeout, crash, cancellation), not a user exception. */
export class CallError extends SkiffError {
  constructor(code: ErrorCode, message: string) {
    super(code, message);
    this.name = code === "TIMEOUT" ? "TimeoutError" : code === "CANCELLED" ? "CancelledError" : "CallError";
  }
}
