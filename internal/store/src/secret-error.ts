import { CodedError } from "@skiff/protocol/coded-error";

/**
 * What went wrong with a secret or an environment: `code` picks the HTTP status. UNREADABLE is the
 * server's trouble, not the caller's: a stored value failed its integrity check or was sealed under
 * another master key. Messages name secrets and keys, never values.
 */
export class SecretError extends CodedError<"NOT_FOUND" | "CONFLICT" | "BAD_REQUEST" | "UNREADABLE"> {
  constructor(code: SecretError["code"], message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = "SecretError";
  }
}
