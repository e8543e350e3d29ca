import { z } from "zod";

/** How user exceptions are retried. Infrastructure failures have their own budget (INFRA_RETRIES). */
export const RetryPolicy = z.object({
  maxRetries: z.number().int().min(0).max(100),
  initialDelayMs: z.number().int().min(0),
  backoffCoefficient: z.number().min(1),
  maxDelayMs: z.number().int().min(0),
});
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/** An image as the worker needs it. The core path knows the Debian base; later layers extend this. */
export const ImageSpec = z.object({
  base: z.literal("debian-bookworm"),
  nodeMajor: z.number().int().min(18),
});
export type ImageSpec = z.infer<typeof ImageSpec>;

/** One function as deployed: everything the server and worker need, normalized (ms, MiB). */
export const FunctionSpec = z.object({
  name: z.string().min(1),
  kind: z.enum(["function"]),
  timeoutMs: z.number().int().positive(),
  retries: RetryPolicy,
  cpu: z.number().positive(),
  memoryMiB: z.number().positive(),
  image: ImageSpec,
  minContainers: z.number().int().min(0),
  maxContainers: z.number().int().min(1),
  bufferContainers: z.number().int().min(0),
  scaledownWindowMs: z.number().int().min(0),
  /** Inputs one container runs at once. */
  maxInputs: z.number().int().min(1),
});
export type FunctionSpec = z.infer<typeof FunctionSpec>;

export const AppManifest = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9-_]{0,62}$/i, "app names use letters, digits, '-' and '_'"),
  functions: z.array(FunctionSpec),
});
export type AppManifest = z.infer<typeof AppManifest>;
