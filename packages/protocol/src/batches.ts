import { BATCH_BYTES } from "./constants.js";
import type { Payload } from "./messages/shared.js";

/** The bytes a payload adds to a message: its inline data (a blob's is only its hash). */
export function inlineBytes(payload: Payload): number {
  return "inline" in payload ? payload.inline.length : 0;
}

/**
 * Items in order, in consecutive batches of at most `limit` bytes (as `bytesOf` counts them), so that a
 * message per batch stays below MAX_FRAME_BYTES; an item larger than `limit` is a batch of its own.
 */
export function batchesOf<T>(items: T[], bytesOf: (item: T) => number, limit = BATCH_BYTES): T[][] {
  const batches: T[][] = [];
  let bytes = Number.POSITIVE_INFINITY;
  for (const item of items) {
    const size = bytesOf(item);
    if (bytes + size > limit) {
      batches.push([]);
      bytes = 0;
    }
    batches.at(-1)!.push(item);
    bytes += size;
  }
  return batches;
}
