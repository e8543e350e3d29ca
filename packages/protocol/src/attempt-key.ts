import type { AttemptRef } from "./attempt.js";

// Apart from the AttemptRef schema so that the runner can use these without loading zod.

/** An attempt as a string, for maps and sets keyed by attempt. */
export function attemptKey(ref: AttemptRef): string {
  return `${ref.inputId}/${ref.attempt}`;
}

/** Only the attempt reference of what carries one (an input, an output): for messages that name attempts. */
export function attemptRefOf(carrier: AttemptRef): AttemptRef {
  return { inputId: carrier.inputId, attempt: carrier.attempt };
}
