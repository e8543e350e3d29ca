import type { ClassShape, FunctionSpec, SpecOverrides } from "@skiff/protocol";
import { mountsProblem } from "@skiff/protocol/mount-rules";
import { MIN_MEMORY_MIB, optionsProblem } from "@skiff/protocol/options";
import { snapshotProblem } from "@skiff/protocol/snapshot-rules";
import { type Duration, parseDuration, parseSize, type Size } from "@skiff/protocol/units";
import { type CloudBucketMount, isCloudBucketMount } from "./bucket-mount.js";
import { Image } from "./image.js";
import { type Schedule, toScheduleSpec } from "./schedule.js";
import { isSecret, type Secret } from "./secret.js";
import { isVolume, type Volume } from "./volume.js";

/** Options of `app.function(options, handler)`. Durations take seconds or "10m"; sizes take MiB or "4GiB". */
export interface FunctionOptions {
  /** Defaults to the name the function is exported under. */
  name?: string;
  /** How long one attempt may run (default 300 s). */
  timeout?: Duration;
  /** Retries of user exceptions: a count, or a policy with backoff. Default: none. */
  retries?: number | { maxRetries: number; initialDelay?: Duration; backoffCoefficient?: number; maxDelay?: Duration };
  /** CPU cores per container (default 1). */
  cpu?: number;
  /** Memory limit per container (default 1 GiB). */
  memory?: Size;
  minContainers?: number;
  maxContainers?: number;
  bufferContainers?: number;
  /** How long an idle container waits for more inputs before it stops (default 60 s). */
  scaledownWindow?: Duration;
  /** How long a new container may take to load the code and run `enter` hooks (default 300 s). */
  startupTimeout?: Duration;
  /**
   * Run several inputs at once in one container: at most `maxInputs`; the autoscaler adds containers
   * to keep about `targetInputs` (default `maxInputs`) on each.
   */
  concurrent?: { maxInputs: number; targetInputs?: number };
  /**
   * Gather single calls into one call of the handler with a list (its first argument), at most
   * `maxBatchSize` long, waiting at most `wait` for it to fill; the handler returns one result per item.
   */
  batched?: { maxBatchSize: number; wait: Duration };
  /** Environment variables for its containers only; later secrets override earlier ones. */
  secrets?: Secret[];
  /** Runs the function by itself once deployed: `Cron("0 3 * * *", { timezone })` or `Period({ hours: 1 })`. */
  schedule?: Schedule;
  /** The container image (default: Debian bookworm with the local Node major). */
  image?: Image;
  /**
   * Volumes (`Volume.fromName`, or `.readOnly()`) and buckets (`CloudBucketMount`) mounted into its
   * containers, by absolute path: `{ "/models": models }`.
   */
  volumes?: Record<string, Volume | CloudBucketMount>;
  /**
   * Start containers from a memory snapshot instead of booting each: the first container loads the code (a
   * class also runs its `@enter({ snap: true })` hooks) and is snapshotted; later ones restore it and run
   * only the other `enter` hooks. On gVisor; other runtimes boot every container (and say so in the logs).
   */
  enableMemorySnapshot?: boolean;
}

/** What `withOptions` may change: everything but the name, image, schedule, mounts and snapshots. */
export type VariantOptions = Omit<FunctionOptions, "name" | "image" | "schedule" | "volumes" | "enableMemorySnapshot">;

const FUNCTION_OPTIONS = [
  "name",
  "timeout",
  "retries",
  "cpu",
  "memory",
  "minContainers",
  "maxContainers",
  "bufferContainers",
  "scaledownWindow",
  "startupTimeout",
  "concurrent",
  "batched",
  "secrets",
  "schedule",
  "image",
  "volumes",
  "enableMemorySnapshot",
] as const satisfies readonly (keyof FunctionOptions)[];
/** Options of a class: a class is neither batched nor scheduled. */
export const CLASS_OPTIONS = FUNCTION_OPTIONS.filter((key) => key !== "batched" && key !== "schedule");
const VARIANT_OPTIONS = FUNCTION_OPTIONS.filter(
  (key) =>
    key !== "name" && key !== "image" && key !== "schedule" && key !== "volumes" && key !== "enableMemorySnapshot",
);
const NESTED_OPTIONS: Record<string, readonly string[]> = {
  retries: ["maxRetries", "initialDelay", "backoffCoefficient", "maxDelay"],
  concurrent: ["maxInputs", "targetInputs"],
  batched: ["maxBatchSize", "wait"],
};

/**
 * Throws a TypeError naming the first option that Skiff does not know or does not implement yet
 * (`gpu`, `volumes`, …): `skiff run` does not type-check, so this is what stops a typo or a missing
 * feature from being silently ignored.
 */
export function checkOptionNames(
  where: string,
  options: unknown,
  kind: "function" | "class" | "variant" = "function",
): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object such as { cpu: 2, memory: "4GiB" }`);
  }
  const known = kind === "class" ? CLASS_OPTIONS : kind === "variant" ? VARIANT_OPTIONS : FUNCTION_OPTIONS;
  let problem = optionsProblem(where, options, known);
  for (const [key, nested] of Object.entries(NESTED_OPTIONS)) {
    const value = (options as Record<string, unknown>)[key];
    if (problem || typeof value !== "object" || value === null) continue;
    problem = optionsProblem(`${where}: ${key}`, value, nested)?.replace(/ option /, " field ");
  }
  if (problem) throw new TypeError(problem);
  // Mounts are checked here too, where the function is declared (against the image's files at the manifest).
  const volumes = (options as FunctionOptions).volumes;
  if (volumes !== undefined && kind !== "variant") mountSpecs(volumes, where, []);
}

/** Normalizes options into the spec the server and worker use; throws a clear error on bad values. */
export function toFunctionSpec(
  name: string,
  options: FunctionOptions,
  nodeMajor: number,
  cls?: ClassShape,
): FunctionSpec {
  const where = `${cls ? "class" : "function"} "${name}"`;
  checkOptionNames(where, options, cls ? "class" : "function");
  const retries = typeof options.retries === "number" ? { maxRetries: options.retries } : options.retries;
  const spec: FunctionSpec = {
    name,
    kind: cls ? "class" : "function",
    ...(cls ? { cls } : {}),
    timeoutMs: parseDuration(options.timeout ?? 300, `${where}: timeout`),
    startupTimeoutMs: parseDuration(options.startupTimeout ?? 300, `${where}: startupTimeout`),
    retries: {
      maxRetries: retries?.maxRetries ?? 0,
      initialDelayMs: parseDuration(retries?.initialDelay ?? 1, `${where}: retries.initialDelay`),
      backoffCoefficient: retries?.backoffCoefficient ?? 2,
      maxDelayMs: parseDuration(retries?.maxDelay ?? 60, `${where}: retries.maxDelay`),
    },
    cpu: options.cpu ?? 1,
    memoryMiB: parseSize(options.memory ?? 1024, `${where}: memory`),
    image: imageSpec(options.image, nodeMajor, where),
    minContainers: options.minContainers ?? 0,
    maxContainers: options.maxContainers ?? 10,
    bufferContainers: options.bufferContainers ?? 0,
    scaledownWindowMs: parseDuration(options.scaledownWindow ?? 60, `${where}: scaledownWindow`),
    maxInputs: options.concurrent?.maxInputs ?? 1,
    ...(options.concurrent?.targetInputs === undefined ? {} : { targetInputs: options.concurrent.targetInputs }),
    ...(options.schedule === undefined ? {} : { schedule: toScheduleSpec(options.schedule, where) }),
    secrets: secretRefs(options.secrets, where),
    volumes: [],
    ...(options.enableMemorySnapshot ? { memorySnapshot: true } : {}),
  };
  if (options.enableMemorySnapshot !== undefined && typeof options.enableMemorySnapshot !== "boolean") {
    throw new TypeError(`${where}: enableMemorySnapshot must be true or false`);
  }
  const snapshot = snapshotProblem(spec);
  if (snapshot) throw new RangeError(`${where}: ${snapshot}`);
  spec.volumes = mountSpecs(options.volumes, where, spec.image.mounts);
  if (spec.schedule && cls) throw new RangeError(`${where}: schedule is for functions, not classes`);
  if (options.batched) {
    if (options.concurrent) throw new RangeError(`${where}: use either batched or concurrent, not both`);
    if (cls) throw new RangeError(`${where}: batched is for functions, not classes`);
    const { maxBatchSize } = options.batched;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1 || maxBatchSize > 1000) {
      throw new RangeError(`${where}: batched.maxBatchSize must be a whole number from 1 to 1000`);
    }
    // A container takes one batch at a time: the autoscaler counts a full batch as its load.
    spec.batched = { maxBatchSize, waitMs: parseDuration(options.batched.wait, `${where}: batched.wait`) };
    spec.maxInputs = maxBatchSize;
  }
  const { maxInputs, targetInputs = maxInputs } = spec;
  if (!Number.isInteger(maxInputs) || maxInputs < 1 || maxInputs > 1000) {
    throw new RangeError(`${where}: concurrent.maxInputs must be a whole number from 1 to 1000`);
  }
  if (!Number.isInteger(targetInputs) || targetInputs < 1 || targetInputs > maxInputs) {
    throw new RangeError(`${where}: concurrent.targetInputs must be a whole number from 1 to maxInputs (${maxInputs})`);
  }
  if (typeof spec.cpu !== "number" || !Number.isFinite(spec.cpu) || spec.cpu <= 0) {
    throw new RangeError(`${where}: cpu must be a number of cores more than 0 (0.5, 2), not ${String(spec.cpu)}`);
  }
  if (spec.memoryMiB < MIN_MEMORY_MIB) {
    throw new RangeError(
      `${where}: memory ${spec.memoryMiB} MiB is too little: Node needs at least ${MIN_MEMORY_MIB} MiB to start; raise memory`,
    );
  }
  if (spec.startupTimeoutMs <= 0) throw new RangeError(`${where}: startupTimeout must be more than 0`);
  if (spec.timeoutMs <= 0) throw new RangeError(`${where}: timeout must be more than 0`);
  if (spec.maxContainers < Math.max(1, spec.minContainers)) {
    throw new RangeError(
      `${where}: maxContainers (${spec.maxContainers}) must be at least minContainers (${spec.minContainers}) and 1`,
    );
  }
  if (!Number.isInteger(spec.retries.maxRetries) || spec.retries.maxRetries < 0 || spec.retries.maxRetries > 100) {
    throw new RangeError(`${where}: retries must be a whole number from 0 to 100`);
  }
  return spec;
}

/**
 * The spec fields `withOptions(overrides)` changes, checked as `toFunctionSpec` checks options (`base`:
 * the function's own options where they are known here, for the checks that relate two options).
 */
export function toSpecOverrides(
  name: string,
  overrides: VariantOptions,
  base: FunctionOptions | undefined,
  cls?: ClassShape,
): SpecOverrides {
  const where = `${cls ? "class" : "function"} "${name}": withOptions`;
  checkOptionNames(where, overrides, "variant");
  if (cls && overrides.batched) throw new RangeError(`${where}: batched is for functions, not classes`);
  for (const secret of overrides.secrets ?? []) {
    if (isSecret(secret) && "local" in secret.ref) {
      throw new TypeError(`${where}: secrets takes Secret.fromName(...) only; put local values in the app's options`);
    }
  }
  // The base's own values where known; else values that let each override be checked on its own.
  const { schedule: _, ...own } = base ?? { maxContainers: Math.max(1, overrides.minContainers ?? 0) };
  const merged: FunctionOptions = { ...own, ...overrides };
  // Batches replace concurrency; the reverse is refused (a batched handler takes lists).
  if (overrides.batched) delete merged.concurrent;
  const spec = toFunctionSpec(name, merged, 0, cls);
  const fields: Record<keyof VariantOptions, (keyof SpecOverrides)[]> = {
    timeout: ["timeoutMs"],
    startupTimeout: ["startupTimeoutMs"],
    retries: ["retries"],
    cpu: ["cpu"],
    memory: ["memoryMiB"],
    minContainers: ["minContainers"],
    maxContainers: ["maxContainers"],
    bufferContainers: ["bufferContainers"],
    scaledownWindow: ["scaledownWindowMs"],
    concurrent: ["maxInputs", "targetInputs"],
    batched: ["batched", "maxInputs"],
    secrets: ["secrets"],
  };
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(fields) as (keyof VariantOptions)[]) {
    if (overrides[key] === undefined) continue;
    for (const field of fields[key]) if (spec[field] !== undefined) out[field] = spec[field];
  }
  return out as SpecOverrides;
}

function mountSpecs(
  volumes: FunctionOptions["volumes"],
  where: string,
  imageMounts: FunctionSpec["image"]["mounts"],
): FunctionSpec["volumes"] {
  if (volumes === undefined) return [];
  if (typeof volumes !== "object" || volumes === null || Array.isArray(volumes)) {
    throw new TypeError(
      `${where}: volumes must be an object of paths, such as { "/models": Volume.fromName("models") }`,
    );
  }
  const mounts = Object.entries(volumes).map(([path, mount]) => {
    if (!isVolume(mount) && !isCloudBucketMount(mount)) {
      throw new TypeError(
        `${where}: volumes["${path}"] must be Volume.fromName(...) (or its .readOnly()) or CloudBucketMount(...)`,
      );
    }
    try {
      return mount.toMountSpec(path);
    } catch (error) {
      throw new TypeError(`${where}: ${(error as Error).message}`);
    }
  });
  const problem = mountsProblem(
    mounts,
    imageMounts.map((mount) => mount.target),
  );
  if (problem) throw new RangeError(`${where}: ${problem}`);
  return mounts;
}

function secretRefs(secrets: unknown, where: string): FunctionSpec["secrets"] {
  if (secrets === undefined) return [];
  if (!Array.isArray(secrets) || !secrets.every(isSecret)) {
    throw new TypeError(
      `${where}: secrets must be a list of Secret.fromName(...), Secret.fromObject(...) or Secret.fromDotenv(...)`,
    );
  }
  return secrets.map((secret) => secret.ref);
}

/** Values of the function's `fromObject`/`fromDotenv` secrets, by id: they travel beside the manifest. */
export function localSecrets(options: FunctionOptions): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const secret of options.secrets ?? []) {
    if ("local" in secret.ref && secret.values) out[secret.ref.local] = secret.values;
  }
  return out;
}

function imageSpec(image: Image | undefined, nodeMajor: number, where: string): FunctionSpec["image"] {
  if (image === undefined) return Image.debianSlim().toSpec(nodeMajor);
  // Not instanceof: the user's bundle carries its own copy of the SDK.
  if (typeof image?.toSpec !== "function") throw new TypeError(`${where}: image must be made with Image.debianSlim()`);
  return image.toSpec(nodeMajor);
}
