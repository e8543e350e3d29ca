import { z } from "zod";
import { AttemptRef } from "../attempt.js";
import { ColdStart } from "../cold-start.js";
import { ErrorCode } from "../error-code.js";
import { FunctionSpec, ImageSpec } from "../manifest.js";
import { BucketCredentials } from "../mounts.js";
import { Bytes, LogLine, OutputStatus, Payload, ShellExit, ShellOutput, Terminal } from "./shared.js";

// worker <-> server: WebSocket /v1/worker, CBOR frames.

/** What a worker offers: its CPUs and memory for containers. */
export const Capacity = z.object({ cpu: z.number().positive(), memoryMiB: z.number().positive() });
export type Capacity = z.infer<typeof Capacity>;

/** An attempt the server leased to a container, with its arguments. */
export const ClaimedInput = AttemptRef.extend({
  args: Payload,
  /** Milliseconds the attempt may run before the worker kills it. */
  timeoutMs: z.number().int().positive(),
  /** A generator's call: the runner streams its values as items. */
  gen: z.boolean().optional(),
});
export type ClaimedInput = z.infer<typeof ClaimedInput>;

/** How an attempt ended, as the worker reports it. */
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

/** A value a generator yielded in an attempt, as the worker relays it (not kept: a lost one fails the call). */
export const WorkerItem = AttemptRef.extend({ index: z.number().int().min(0), data: Payload });
export type WorkerItem = z.infer<typeof WorkerItem>;

/** How many of a generator attempt's values its caller has taken (see GENERATOR_WINDOW). */
export const GeneratorCredit = AttemptRef.extend({ consumed: z.number().int().min(0) });
export type GeneratorCredit = z.infer<typeof GeneratorCredit>;

/** What a worker sends the server. */
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
    /**
     * Where the server sends web requests for this worker's containers: `{url}/containers/ID/PATH` with the
     * request's own method, headers and body, plus `skiff-relay-secret: {secret}` (WEB_RELAY_SECRET_HEADER).
     */
    webRelay: z.object({ url: z.string().url(), secret: z.string().min(16) }).optional(),
  }),
  /** Its runner is ready; `start` says how it started and how long each phase took (see START_PHASES). */
  z.object({ t: z.literal("started"), containerId: z.string(), start: ColdStart.optional() }),
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
  /** Values generators yielded, in order; each attempt's come before its output. */
  z.object({ t: z.literal("items"), items: z.array(WorkerItem) }),
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

/** Values of build secrets, by secret name, as the worker gets them. */
export const BuildSecretValues = z.record(z.record(z.string()));
export type BuildSecretValues = z.infer<typeof BuildSecretValues>;

/** What building an image needs from the server: its registry login, its steps' secrets and volumes. */
export const ImageSecrets = z.object({
  registryAuth: RegistryAuth.optional(),
  /** Values of the secrets the image's steps run with, by name (see ImageStep). */
  buildSecrets: BuildSecretValues.optional(),
  /**
   * For an image whose steps mount volumes: a token (`ID:SECRET`) that reaches those volumes of `env`, and
   * no others, until the build (or the start it is part of) ends.
   */
  buildVolumes: z.object({ token: z.string(), env: z.string() }).optional(),
});
export type ImageSecrets = z.infer<typeof ImageSecrets>;

/** What the server sends a worker. */
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
    /** Runner variables the server decides (a class's parameters; see runnerEnvironment). */
    env: z.record(z.string()),
    /** The function's secrets, resolved: environment variables whose values are redacted from its logs. */
    secrets: z.record(z.string()).default({}),
    ...ImageSecrets.shape,
    /** The app's environment: where `Function.fromName` looks inside the container. */
    appEnv: z.string(),
    /** The container's own token (`ID:SECRET`), good while it lives: the code inside calls functions with it. */
    token: z.string(),
    /** The ids of the app's functions and classes, by name: `other.remote()` inside the container. */
    functionIds: z.record(z.string()),
    /** The credentials of the spec's bucket mounts, by the name of the secret they come from. */
    bucketCredentials: z.record(BucketCredentials).default({}),
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
  /** Generator attempts whose callers took more values: they may run further ahead. */
  z.object({ t: z.literal("credit"), credits: z.array(GeneratorCredit) }),
  /** Inputs cancelled by their caller: kill the attempt if it is running. */
  z.object({ t: z.literal("cancel"), inputs: z.array(AttemptRef) }),
  /** Build an image now (`skiff image build`), answering with `build-log` lines and a `build-done`. */
  z.object({
    t: z.literal("build"),
    rid: z.number(),
    image: ImageSpec,
    /** Also export it as an OCI layout (a tar in the blob store). */
    export: z.boolean().default(false),
    ...ImageSecrets.shape,
  }),
  z.object({
    t: z.literal("shell-open"),
    sid: z.string(),
    image: ImageSpec,
    command: z.array(z.string()).min(1),
    ...ImageSecrets.shape,
    tty: Terminal.optional(),
  }),
  z.object({ t: z.literal("shell-input"), sid: z.string(), data: Bytes.optional(), eof: z.boolean().default(false) }),
  z.object({ t: z.literal("shell-resize"), sid: z.string(), rows: z.number().int(), cols: z.number().int() }),
  z.object({ t: z.literal("shell-close"), sid: z.string() }),
]);
export type ServerToWorker = z.infer<typeof ServerToWorker>;
