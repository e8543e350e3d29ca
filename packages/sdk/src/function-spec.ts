import type { ClassShape, FunctionSpec } from "@skiff/protocol";
import { type Duration, parseDuration, parseSize, type Size } from "@skiff/protocol/units";
import { Image } from "./image.js";
import { type Schedule, toScheduleSpec } from "./schedule.js";
import { isSecret, type Secret } from "./secret.js";

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
}

/** Normalizes options into the spec the server and worker use; throws a clear error on bad values. */
export function toFunctionSpec(
  name: string,
  options: FunctionOptions,
  nodeMajor: number,
  cls?: ClassShape,
): FunctionSpec {
  const where = `${cls ? "class" : "function"} "${name}"`;
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
  };
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
