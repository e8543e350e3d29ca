import { z } from "zod";
import { BatchOptions } from "./batch-options.js";

/** A variable holding JSON, checked by `schema` once parsed. */
function json<T extends z.ZodTypeAny>(schema: T) {
  return z
    .string()
    .transform((text, context): unknown => {
      try {
        return JSON.parse(text);
      } catch {
        context.addIssue({ code: z.ZodIssueCode.custom, message: "is not JSON" });
        return z.NEVER;
      }
    })
    .pipe(schema);
}

/**
 * What the program inside a container is told through its environment, by variable: the worker writes it
 * (the server adds a class's parameters) with runnerEnvironment, and the runner reads it with
 * parseRunnerEnvironment, a hand-written check of this schema that keeps zod out of every container's start.
 * Text stays text; numbers and maps are JSON.
 */
export const RunnerEnvironment = z.object({
  /** The worker's Unix socket for this runner. */
  SKIFF_SOCKET: z.string().min(1),
  /** The container's relay to the server: calls to other functions, and large payloads as blobs. */
  SKIFF_API_SOCKET: z.string().optional(),
  /** The user's bundle (ESM, inline source map). */
  SKIFF_BUNDLE: z.string().min(1),
  /** A function's or a class's name. */
  SKIFF_FUNCTION: z.string().min(1),
  /** Inputs the runner runs at once. */
  SKIFF_MAX_INPUTS: json(z.number().int().min(1)).default("1"),
  /** A class pool's parameter values, as JSON text (the server writes it). */
  SKIFF_PARAMS: z.string().optional(),
  /** Gather inputs into lists for a batched function. */
  SKIFF_BATCH: json(BatchOptions).optional(),
  /** The container's id, for `currentContainerId()`. */
  SKIFF_CONTAINER_ID: z.string().optional(),
  /** The app the function belongs to: code in the container calls the app's other functions. */
  SKIFF_APP_ID: z.string().optional(),
  /** The app's environment: where `Function.fromName` looks. */
  SKIFF_ENV: z.string().default("main"),
  /** A web function: the Unix socket the runner serves its HTTP requests on (the worker relays to it). */
  SKIFF_WEB_SOCKET: z.string().optional(),
  /**
   * "1": the container is booted to be snapshotted. Once the code has loaded (and a class's snap hooks ran), the
   * runner says `snapshot-ready`, closes its socket, and waits for RESTORED_MARK beside SKIFF_SOCKET: a
   * container restored from the snapshot has it. It then connects again and goes on as any runner.
   */
  SKIFF_SNAPSHOT: z.literal("1").optional(),
  /**
   * A spare runner, booted ahead: it loads the runner, connects to this socket and waits there for a
   * SpareAssignment (the rest of its environment); only then does it read the others.
   */
  SKIFF_SPARE_SOCKET: z.string().optional(),
  /** The ids of the app's functions and classes, by name: `other.remote()` finds its id here. */
  SKIFF_FUNCTION_IDS: json(z.record(z.string())).default("{}"),
});
/** The runner's settings, as parsed from its environment. */
export type RunnerEnvironment = z.output<typeof RunnerEnvironment>;

/**
 * The environment variables that carry `values` (those left undefined stay unset): the worker writes a
 * container's, the server a class pool's SKIFF_PARAMS.
 * @example
 * runnerEnvironment({ SKIFF_MAX_INPUTS: 4 }) // { SKIFF_MAX_INPUTS: "4" }
 */
export function runnerEnvironment(values: Partial<RunnerEnvironment>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined) env[name] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return env;
}
