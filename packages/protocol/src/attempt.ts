import { z } from "zod";

/** One attempt at one input: what the server, the worker and the runner all mean by "this run of that input". */
export const AttemptRef = z.object({ inputId: z.string(), attempt: z.number().int().min(1) });
export type AttemptRef = z.infer<typeof AttemptRef>;
