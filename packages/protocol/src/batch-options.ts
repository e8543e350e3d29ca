import { z } from "zod";

/** A batched function's gathering: at most `maxBatchSize` single calls in one call of the handler, waiting `waitMs`. */
export const BatchOptions = z.object({
  maxBatchSize: z.number().int().min(1).max(1000),
  waitMs: z.number().int().min(0),
});
export type BatchOptions = z.infer<typeof BatchOptions>;
