import type { FunctionSpec } from "@skiff/protocol";
import { type Duration, parseDuration, parseSize, type Size } from "@skiff/protocol/units";
import { Image } from "./image.js";

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
  /** Run several inputs at once in one container. */
  concurrent?: { maxInputs: number };
  /** The container image (default: Debian bookworm with the local Node major). */
  image?: Image;
}

/** Normalizes options into the spec the server and worker use; throws a clear error on bad values. */
export function toFunctionSpec(name: string, options: FunctionOptions, nodeMajor: number): FunctionSpec {
  const where = `function "${name}"`;
  const retries = typeof options.retries === "number" ? { maxRetries: options.retries } : options.retries;
  const spec: FunctionSpec = {
    name,
    kind: "function",
    timeoutMs: parseDuration(options.timeout ?? 300, `${where}: timeout`),
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
  };
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

function imageSpec(image: Image | undefined, nodeMajor: number, where: string): FunctionSpec["image"] {
  if (image === undefined) return Image.debianSlim().toSpec(nodeMajor);
  // Not instanceof: the user's bundle carries its own copy of the SDK.
  if (typeof image?.toSpec !== "function") throw new TypeError(`${where}: image must be made with Image.debianSlim()`);
  return image.toSpec(nodeMajor);
}
