import { z } from "zod";
import { AttemptRef } from "./attempt.js";
import { ErrorCode } from "./error-code.js";
import { FunctionSpec, ImageSpec } from "./manifest.js";

const Bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, "expected bytes");

/** A terminal for a shell: its size, and the caller's TERM. */
export const Terminal = z.object({
  rows: z.number().int().min(1).max(10_000),
  cols: z.number().int().min(1).max(10_000),
  term: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,64}$/)
    .default("xterm-256color"),
});
export type Terminal = z.infer<typeof Terminal>;

/** A payload is CBOR bytes inline, or a sha256 of a blob when it is larger than INLINE_PAYLOAD_LIMIT. */
const BLOB_HASH = /^[0-9a-f]{64}$/;

export const Payload = z.union([z.object({ inline: Bytes }), z.object({ blob: z.string().regex(BLOB_HASH) })]);
export type Payload = z.infer<typeof Payload>;

/** One input of a submit: its index in the call and its arguments. */
export type SubmitInput = { idx: number; args: Payload };

/**
 * The inputs of a submit, checked by hand: a map sends them 1,000 at a time, and checking each with zod (a union
 * per payload) cost ~6 µs an input, a sizeable part of the server's work per input.
 */
const SubmitInputs = z.custom<SubmitInput[]>(
  (value) =>
    Array.isArray(value) &&
    value.every((input: { idx?: unknown; args?: unknown }) => {
      if (typeof input !== "object" || input === null || !Number.isInteger(input.idx) || (input.idx as number) < 0)
        return false;
      return isPayload(input.args);
    }),
  "inputs must be a list of { idx: an integer ≥ 0, args: { inline: bytes } or { blob: a sha256 in hex } }",
);

/** Whether `value` is a Payload (what the zod schema above accepts), without zod. */
export function isPayload(value: unknown): value is Payload {
  if (typeof value !== "object" || value === null) return false;
  const payload = value as { inline?: unknown; blob?: unknown };
  if ("inline" in payload) return payload.inline instanceof Uint8Array;
  return typeof payload.blob === "string" && BLOB_HASH.test(payload.blob);
}

export const OutputStatus = z.enum(["success", "failure"]);
export type OutputStatus = z.infer<typeof OutputStatus>;

/** A final result of one input of a call, as the caller receives it. */
export const Result = z.object({
  idx: z.number().int().min(0),
  status: OutputStatus,
  /** Why it failed, for failures the platform produced (timeouts, crashes); user errors are USER_ERROR. */
  code: ErrorCode.optional(),
  data: Payload,
});
export type Result = z.infer<typeof Result>;

export const LogLine = z.object({
  ts: z.number(),
  appId: z.string(),
  functionName: z.string(),
  containerId: z.string(),
  stream: z.enum(["stdout", "stderr", "system"]),
  line: z.string(),
  /** The line's number in its container (from 1): a line sent again after a reconnect is known by it. */
  seq: z.number().int().min(1).optional(),
});
export type LogLine = z.infer<typeof LogLine>;

/** Output of a shell: its stdout and stderr, and `system` lines (the image's build). */
const ShellOutput = z.object({
  t: z.literal("shell-output"),
  sid: z.string(),
  stream: z.enum(["stdout", "stderr", "system"]),
  data: Bytes,
});
/** The shell ended: its exit code, or why it could not start. */
const ShellExit = z.object({
  t: z.literal("shell-exit"),
  sid: z.string(),
  code: z.number().int().nullable(),
  error: z.string().optional(),
});

// ---- client <-> server (WebSocket /v1/client, CBOR frames) ----

export const ClientMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("submit"),
    rid: z.number(),
    functionId: z.string(),
    /** Chosen by the client, so a resend after a reconnect is deduplicated by (callId, idx). */
    callId: z.string().uuid(),
    inputs: SubmitInputs,
    /** The total number of inputs the call will have (a map submits in chunks). */
    total: z.number().int().min(0),
    /** Push results of this call to this connection. */
    subscribe: z.boolean(),
    /** Sent again after a reconnect: the server checks what it already has before running anything. */
    resent: z.boolean().default(false),
  }),
  z.object({
    t: z.literal("subscribe"),
    rid: z.number(),
    callId: z.string().uuid(),
    fromIdx: z.number().int().min(0).default(0),
  }),
  z.object({ t: z.literal("cancel"), rid: z.number(), callId: z.string().uuid() }),
  /** Stop pushing this call's results here (the caller has what it wanted). */
  z.object({ t: z.literal("unsubscribe"), rid: z.number(), callId: z.string().uuid() }),
  /**
   * Streams an app's logs. `resume` after a reconnect: the server first sends the lines it still holds
   * (the last minute), and the client drops those it had by their `seq`.
   */
  z.object({ t: z.literal("logs"), rid: z.number(), appId: z.string(), resume: z.boolean().optional() }),
  z.object({ t: z.literal("ping"), rid: z.number() }),
  /** Opens a shell (or runs `command`) in a container of `image`; output comes back as `shell-output`. */
  z.object({
    t: z.literal("shell-open"),
    rid: z.number(),
    sid: z.string().uuid(),
    image: ImageSpec,
    command: z.array(z.string()).min(1).default(["/bin/sh"]),
    /** Where the image's registry secret is looked up. */
    env: z.string().default("main"),
    /** Run it on a terminal of this size (an interactive `skiff shell`); plain pipes without. */
    tty: Terminal.optional(),
  }),
  /** The caller's terminal changed size. */
  z.object({
    t: z.literal("shell-resize"),
    rid: z.number(),
    sid: z.string().uuid(),
    rows: z.number().int().min(1).max(10_000),
    cols: z.number().int().min(1).max(10_000),
  }),
  /** Bytes for the shell's stdin; `eof` closes it. */
  z.object({
    t: z.literal("shell-input"),
    rid: z.number(),
    sid: z.string().uuid(),
    data: Bytes.optional(),
    eof: z.boolean().default(false),
  }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
/** A client message as sent: fields with defaults may be left out. */
export type ClientMessageInput = z.input<typeof ClientMessage>;

export const ServerToClient = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("ack"),
    rid: z.number(),
    error: z.object({ code: ErrorCode, message: z.string() }).optional(),
  }),
  z.object({ t: z.literal("results"), callId: z.string(), results: z.array(Result) }),
  z.object({ t: z.literal("logs"), lines: z.array(LogLine) }),
  /** The app is stopped and its containers are gone: every line they wrote was sent before this. */
  z.object({ t: z.literal("logs-end"), appId: z.string() }),
  ShellOutput,
  ShellExit,
]);
export type ServerToClient = z.infer<typeof ServerToClient>;

// ---- worker <-> server (WebSocket /v1/worker, CBOR frames) ----

export const Capacity = z.object({ cpu: z.number().positive(), memoryMiB: z.number().positive() });
export type Capacity = z.infer<typeof Capacity>;

export const ClaimedInput = AttemptRef.extend({
  args: Payload,
  /** Milliseconds the attempt may run before the worker kills it. */
  timeoutMs: z.number().int().positive(),
});
export type ClaimedInput = z.infer<typeof ClaimedInput>;

export const WorkerOutput = AttemptRef.extend({
  status: OutputStatus,
  code: ErrorCode.optional(),
  /** A failure that must not be retried (NonRetriableError, timeouts). */
  retryable: z.boolean().default(true),
  /** An infrastructure failure (crash, lost container): retried outside the user's budget. */
  infra: z.boolean().default(false),
  data: Payload,
});
export type WorkerOutput = z.infer<typeof WorkerOutput>;

export const WorkerMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("hello"),
    v: z.number().int(),
    workerId: z.string(),
    name: z.string(),
    runtime: z.enum(["gvisor", "runc", "process"]),
    capacity: Capacity,
    /** Containers still running from before a reconnect. */
    containers: z.array(z.string()),
    /**
     * Inputs it still holds: running (in `containerId`), or with an output not yet recorded. Other leases
     * of its containers are void.
     */
    held: z.array(AttemptRef.extend({ containerId: z.string().optional() })).default([]),
  }),
  z.object({ t: z.literal("started"), containerId: z.string() }),
  /** Idle past its scaledown window: the server answers `stop` (reason "idle") unless the pool keeps it. */
  z.object({ t: z.literal("idle"), containerId: z.string() }),
  z.object({
    t: z.literal("stopped"),
    containerId: z.string(),
    reason: z.enum(["idle", "requested", "crashed", "oom", "timeout", "init-failed", "start-failed"]),
    message: z.string().optional(),
    /** The user's error (SDK-encoded) when the bundle failed to load. */
    error: Bytes.optional(),
    /** Inputs that were running in the container when it stopped. */
    inFlight: z.array(AttemptRef),
  }),
  z.object({ t: z.literal("claim"), rid: z.number(), containerId: z.string(), max: z.number().int().min(1) }),
  /** The container is stopping: drop its waiting claim. */
  z.object({ t: z.literal("unclaim"), containerId: z.string() }),
  /** Inputs that reached a container after it began to stop, never run: requeue them, no failure counted. */
  z.object({ t: z.literal("return"), inputs: z.array(AttemptRef) }),
  /** `seq` is acknowledged once recorded; unacknowledged batches are sent again after a reconnect. */
  z.object({ t: z.literal("outputs"), seq: z.number().int(), outputs: z.array(WorkerOutput) }),
  z.object({
    t: z.literal("heartbeat"),
    inputs: z.array(AttemptRef),
  }),
  /** `seq` is acknowledged by `logs-recorded` once published; unacknowledged batches go again after a reconnect. */
  z.object({ t: z.literal("logs"), seq: z.number().int().optional(), lines: z.array(LogLine) }),
  z.object({ t: z.literal("build-log"), rid: z.number(), lines: z.array(z.string()) }),
  z.object({
    t: z.literal("build-done"),
    rid: z.number(),
    error: z.string().optional(),
    /** The blob holding the exported OCI layout, when asked for. */
    exported: z.string().optional(),
  }),
  ShellOutput,
  ShellExit,
]);
export type WorkerMessage = z.infer<typeof WorkerMessage>;

/** A registry login, resolved by the server from the secret an image names; never stored by the worker. */
export const RegistryAuth = z.object({ username: z.string(), password: z.string() });
export type RegistryAuth = z.infer<typeof RegistryAuth>;

export const ServerToWorker = z.discriminatedUnion("t", [
  z.object({ t: z.literal("welcome"), v: z.number().int(), blobUrl: z.string() }),
  z.object({
    t: z.literal("start"),
    containerId: z.string(),
    appId: z.string(),
    appName: z.string(),
    functionId: z.string(),
    bundleHash: z.string(),
    spec: FunctionSpec,
    env: z.record(z.string()),
    /** The function's secrets, resolved: environment variables whose values are redacted from its logs. */
    secrets: z.record(z.string()).default({}),
    registryAuth: RegistryAuth.optional(),
    /** Values of the secrets the image's steps run with, by name (see ImageStep). */
    buildSecrets: z.record(z.record(z.string())).optional(),
    /** The app's environment: where `Function.fromName` looks inside the container. */
    appEnv: z.string(),
    /** The container's own token (`ID:SECRET`), good while it lives: the code inside calls functions with it. */
    token: z.string(),
    /** The ids of the app's functions and classes, by name: `other.remote()` inside the container. */
    functionIds: z.record(z.string()),
  }),
  z.object({ t: z.literal("stop"), containerId: z.string(), reason: z.string() }),
  z.object({
    t: z.literal("inputs"),
    rid: z.number(),
    inputs: z.array(ClaimedInput),
    shutdown: z.boolean().default(false),
  }),
  /** Output batches up to this seq are recorded. */
  z.object({ t: z.literal("outputs-recorded"), seq: z.number().int() }),
  /** Log batches up to this seq reached the server's log watchers. */
  z.object({ t: z.literal("logs-recorded"), seq: z.number().int() }),
  /** Inputs cancelled by their caller: kill the attempt if it is running. */
  z.object({ t: z.literal("cancel"), inputs: z.array(AttemptRef) }),
  /** Build an image now (`skiff image build`), answering with `build-log` lines and a `build-done`. */
  z.object({
    t: z.literal("build"),
    rid: z.number(),
    image: ImageSpec,
    /** Also export it as an OCI layout (a tar in the blob store). */
    export: z.boolean().default(false),
    registryAuth: RegistryAuth.optional(),
    /** Values of the secrets the image's steps run with, by name (see ImageStep). */
    buildSecrets: z.record(z.record(z.string())).optional(),
  }),
  z.object({
    t: z.literal("shell-open"),
    sid: z.string(),
    image: ImageSpec,
    command: z.array(z.string()).min(1),
    registryAuth: RegistryAuth.optional(),
    /** Values of the secrets the image's steps run with, by name (see ImageStep). */
    buildSecrets: z.record(z.record(z.string())).optional(),
    tty: Terminal.optional(),
  }),
  z.object({ t: z.literal("shell-input"), sid: z.string(), data: Bytes.optional(), eof: z.boolean().default(false) }),
  z.object({ t: z.literal("shell-resize"), sid: z.string(), rows: z.number().int(), cols: z.number().int() }),
  z.object({ t: z.literal("shell-close"), sid: z.string() }),
]);
export type ServerToWorker = z.infer<typeof ServerToWorker>;

// ---- runner <-> worker (Unix socket inside the container, length-prefixed CBOR frames) ----

/**
 * A payload between worker and runner: bytes, or a blob the other side moves itself through the container's
 * api.sock with the container's token (a large one never crosses runner.sock).
 */
const RunnerData = z.union([Bytes, z.object({ blob: z.string().regex(BLOB_HASH) })]);
export type RunnerData = z.infer<typeof RunnerData>;

function isRunnerData(value: unknown): value is RunnerData {
  if (value instanceof Uint8Array) return true;
  const blob = (value as { blob?: unknown } | null)?.blob;
  return typeof blob === "string" && BLOB_HASH.test(blob);
}

export const RunnerMessage = z.discriminatedUnion("t", [
  z.object({ t: z.literal("ready") }),
  z.object({ t: z.literal("init-failed"), error: Bytes }),
  z.object({ t: z.literal("next"), max: z.number().int().min(1) }),
  AttemptRef.extend({
    t: z.literal("output"),
    status: OutputStatus,
    retryable: z.boolean(),
    /** The encoded value, or a blob the runner put through api.sock (a large one). */
    data: RunnerData,
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
      return { t: "ready" };
    case "init-failed":
      return m.error instanceof Uint8Array ? { t: "init-failed", error: m.error } : undefined;
    case "next":
      return Number.isInteger(m.max) && (m.max as number) >= 1 ? { t: "next", max: m.max as number } : undefined;
    case "output":
      if (
        typeof m.inputId !== "string" ||
        !Number.isInteger(m.attempt) ||
        !RUNNER_STATUS.has(m.status) ||
        typeof m.retryable !== "boolean" ||
        !isRunnerData(m.data)
      )
        return undefined;
      return {
        t: "output",
        inputId: m.inputId,
        attempt: m.attempt as number,
        status: m.status as OutputStatus,
        retryable: m.retryable,
        data: m.data instanceof Uint8Array ? m.data : { blob: (m.data as { blob: string }).blob },
      };
    default:
      return undefined;
  }
}

export const WorkerToRunner = z.discriminatedUnion("t", [
  /**
   * The first frame on the runner's connection: the container's token goes to the runner this way only, never
   * through an environment (every process in the container can read /proc/1/environ).
   */
  z.object({ t: z.literal("hello"), token: z.string() }),
  z.object({
    t: z.literal("inputs"),
    inputs: z.array(AttemptRef.extend({ args: RunnerData })),
  }),
  z.object({ t: z.literal("shutdown") }),
]);
export type WorkerToRunner = z.infer<typeof WorkerToRunner>;
