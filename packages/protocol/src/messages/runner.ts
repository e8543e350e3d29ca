import { z } from "zod";
import { AttemptRef } from "../attempt.js";
import { isStartPhases, StartPhases } from "../cold-start.js";
import { BLOB_HASH, Bytes, OutputStatus } from "./shared.js";

// runner <-> worker: Unix socket inside the container, length-prefixed CBOR frames.

/**
 * A payload between worker and runner: bytes, or a blob the other side moves itself through the container's
 * api.sock with the container's token (a large one never crosses runner.sock).
 */
export const RunnerData = z.union([Bytes, z.object({ blob: z.string().regex(BLOB_HASH) })]);
export type RunnerData = z.infer<typeof RunnerData>;

function isRunnerData(value: unknown): value is RunnerData {
  if (value instanceof Uint8Array) return true;
  const blob = (value as { blob?: unknown } | null)?.blob;
  return typeof blob === "string" && BLOB_HASH.test(blob);
}

/** What the runner sends the worker. */
export const RunnerMessage = z.discriminatedUnion("t", [
  /** Loaded and listening; `phases` are the runner's own part of the cold start (`load`, `enter`, `serve`). */
  z.object({ t: z.literal("ready"), phases: StartPhases.optional() }),
  /** Booted to be snapshotted (SKIFF_SNAPSHOT): the code is loaded; the runner closes its socket next. */
  z.object({ t: z.literal("snapshot-ready") }),
  z.object({ t: z.literal("init-failed"), error: Bytes }),
  z.object({ t: z.literal("next"), max: z.number().int().min(1) }),
  AttemptRef.extend({
    t: z.literal("output"),
    status: OutputStatus,
    retryable: z.boolean(),
    /** The encoded value, or a blob the runner put through api.sock (a large one). */
    data: RunnerData,
  }),
  /** A value a generator yielded (numbered from 0); the attempt's `output` follows its last one. */
  AttemptRef.extend({ t: z.literal("item"), index: z.number().int().min(0), data: RunnerData }),
  /** The code inside asks to commit or reload a mounted volume (`volume.commit()`); `volume-done` answers `rid`. */
  z.object({
    t: z.literal("volume"),
    rid: z.number().int().min(0),
    op: z.enum(["commit", "reload"]),
    name: z.string().min(1),
  }),
]);
export type RunnerMessage = z.infer<typeof RunnerMessage>;

const RUNNER_STATUS = new Set<unknown>(OutputStatus.options);

/**
 * A runner's message if `value` is one (what `RunnerMessage` accepts), else undefined. Checked by hand: the worker
 * reads one per output, and zod took ~4.5 µs each.
 */
export function parseRunnerMessage(value: unknown): RunnerMessage | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const m = value as Record<string, unknown>;
  switch (m.t) {
    case "ready":
      if (m.phases === undefined) return { t: "ready" };
      return isStartPhases(m.phases) ? { t: "ready", phases: { ...m.phases } } : undefined;
    case "snapshot-ready":
      return { t: "snapshot-ready" };
    case "init-failed":
      return m.error instanceof Uint8Array ? { t: "init-failed", error: m.error } : undefined;
    case "next":
      return Number.isInteger(m.max) && (m.max as number) >= 1 ? { t: "next", max: m.max as number } : undefined;
    case "output": {
      const carried = attemptData(m);
      if (!carried || !RUNNER_STATUS.has(m.status) || typeof m.retryable !== "boolean") return undefined;
      return { t: "output", ...carried, status: m.status as OutputStatus, retryable: m.retryable };
    }
    case "item": {
      const carried = attemptData(m);
      if (!carried || !Number.isInteger(m.index) || (m.index as number) < 0) return undefined;
      return { t: "item", ...carried, index: m.index as number };
    }
    case "volume": {
      const valid =
        Number.isInteger(m.rid) &&
        (m.rid as number) >= 0 &&
        (m.op === "commit" || m.op === "reload") &&
        typeof m.name === "string" &&
        m.name.length > 0;
      return valid ? { t: "volume", rid: m.rid as number, op: m.op as "commit", name: m.name as string } : undefined;
    }
    default:
      return undefined;
  }
}

/** An attempt handed to the runner, with its arguments. */
export const RunnerInput = AttemptRef.extend({
  args: RunnerData,
  /** A generator's call (`.remoteGen`): stream its values as `item`s, GENERATOR_WINDOW ahead of `credit`. */
  gen: z.boolean().optional(),
});
export type RunnerInput = z.infer<typeof RunnerInput>;

/** What the worker sends the runner. */
export const WorkerToRunner = z.discriminatedUnion("t", [
  /**
   * The first frame on the runner's connection: the container's token goes to the runner this way only, never
   * through an environment (every process in the container can read /proc/1/environ).
   */
  /** The container's token; after a restore from a snapshot, also the container's own id (the snapshot has another's). */
  z.object({ t: z.literal("hello"), token: z.string(), containerId: z.string().optional() }),
  z.object({ t: z.literal("inputs"), inputs: z.array(RunnerInput) }),
  z.object({ t: z.literal("shutdown") }),
  /** A generator attempt's caller took `consumed` values: it may yield up to GENERATOR_WINDOW more. */
  AttemptRef.extend({ t: z.literal("credit"), consumed: z.number().int().min(0) }),
  /** A generator attempt's caller left (or cancelled): stop it with `return()`, which runs its `finally` blocks. */
  AttemptRef.extend({ t: z.literal("cancel") }),
  /** The answer to a runner's `volume`: the version the mount now shows, or why it failed. */
  z.object({
    t: z.literal("volume-done"),
    rid: z.number().int(),
    version: z.number().int().optional(),
    error: z.string().optional(),
  }),
]);
export type WorkerToRunner = z.infer<typeof WorkerToRunner>;

/** The attempt a runner's message is about and the data it carries; undefined when either is malformed. */
function attemptData(m: Record<string, unknown>): { inputId: string; attempt: number; data: RunnerData } | undefined {
  if (typeof m.inputId !== "string" || !Number.isInteger(m.attempt) || !isRunnerData(m.data)) return undefined;
  const data = m.data instanceof Uint8Array ? m.data : { blob: (m.data as { blob: string }).blob };
  return { inputId: m.inputId, attempt: m.attempt as number, data };
}

/**
 * What a spare runner (booted ahead with SKIFF_SPARE_SOCKET, no code) is sent once a container takes it: the
 * environment it would have been started with. It sets it, and goes on as any runner.
 */
export interface SpareAssignment {
  t: "assign";
  env: Record<string, string>;
}
