import { z } from "zod";

/**
 * How long each phase of a container's cold start took, in whole milliseconds, by phase name. The phases, in
 * the order they happen (START_PHASES says what each one covers); a phase that did not happen is absent.
 */
export const StartPhases = z.record(z.number().int().min(0));
export type StartPhases = z.infer<typeof StartPhases>;

/** Whether `value` is StartPhases (what the zod schema accepts), without zod: the runner's `ready` carries one. */
export function isStartPhases(value: unknown): value is StartPhases {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  return Object.values(value).every((ms) => Number.isInteger(ms) && (ms as number) >= 0);
}

/**
 * How a container started: booted (Node started, the code loaded), restored from a memory snapshot, or a spare
 * runner the worker had booted ahead (Node up, no code) that was handed this function's code.
 */
export const ColdStart = z.object({ kind: z.enum(["booted", "restored", "spare"]), phases: StartPhases });
export type ColdStart = z.infer<typeof ColdStart>;

/** The phases of a cold start in the order they happen, and what each covers. */
export const START_PHASES = {
  placement: "the server: from deciding to start the container until its worker began (secrets, store, network)",
  prepare: "the worker: the bundle, the image and the Node build ready on its host (built or fetched if new)",
  mounts: "the worker: the function's volumes and buckets mounted (only with volumes)",
  create: "the runtime: the container's root filesystem, network and sandbox made, its process spawned",
  boot: "the container: from its process spawned until the runner is up (Node started, the runner loaded)",
  snapshot: "the container that takes its function's memory snapshot: boot, load and snap hooks",
  checkpoint: "that container checkpointed, its snapshot stored on the worker",
  restore: "the container: restored from a snapshot until the runner is back",
  adopt: "a spare runner (booted ahead, Node up, no code): handed the function's code and environment until ready",
  load: "the runner: the user's bundle imported and the function found",
  enter: "the runner: a class's `enter` hooks run",
  serve: "the runner: a web function's server listening",
} as const;

/** A cold start's phases in START_PHASES order, then any others in the order they came. */
export function orderedPhases(phases: StartPhases): [string, number][] {
  const known = Object.keys(START_PHASES);
  const rank = (name: string) => (known.includes(name) ? known.indexOf(name) : known.length);
  return Object.entries(phases).sort(([a], [b]) => rank(a) - rank(b));
}

/** The whole cold start: the sum of its phases, in ms. */
export function coldStartMs(start: ColdStart): number {
  return Object.values(start.phases).reduce((sum, ms) => sum + ms, 0);
}
