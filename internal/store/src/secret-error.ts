/**
 * What went wrong with a secret or an environment: `code` picks the HTTP status. UNREADABLE is the
 * server's trouble, not the caller's: a stored value failed its integrity check or was sealed under
 * another master key. Messages name secrets and keys, never values.
 */
export class SecretError extends Error {
  readonly code: "NOT_FOUND" | "CONFLICT" | "BAD_REQUEST" | "UNREADABLE";
  constructor(code: SecretError["code"], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SecretError";
    this.code = code;
  }
}
