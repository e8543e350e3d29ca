/**
 * Where this copy of the SDK is running. Plain data on globalThis, set by the CLI before it runs a local
 * entrypoint and by the runner inside a container, so every copy of the SDK in the process sees it.
 */
export interface SkiffContext {
  v: 1;
  /** "local": a skiff run/entrypoint process; "container": inside a runner. */
  where: "local" | "container";
  serverUrl?: string;
  token?: string;
  /**
   * Inside a container: resolves once `token` is set (the worker sends it over the runner's socket while the
   * function's module loads); read `token` after it.
   */
  tokenReady?: Promise<void>;
  appId?: string;
  env?: string;
  /** The container's id, inside a container. */
  containerId?: string;
  /** Function ids of the running app, by name. */
  functionIds: Record<string, string>;
  /** Told how a map is going (the CLI draws a progress line); called often, must be cheap. */
  onProgress?: (progress: MapProgress) => void;
  /**
   * Inside a container: commits or reloads the mount of the named volume (the worker holds the mounts);
   * rejects when this function does not mount it. Answers the version the mount then shows.
   */
  volumes?: (op: "commit" | "reload", name: string) => Promise<{ version: number }>;
  /**
   * Inside a container: the client the code's calls go through (its connection to the worker's relay), shared
   * by every copy of the SDK in the process; the runner closes it before a memory snapshot.
   */
  client?: { close(): void; disconnect(): Promise<void> };
}

export interface MapProgress {
  callId: string;
  label: string;
  done: number;
  /** Inputs submitted so far; final once `submittedAll`. */
  total: number;
  submittedAll: boolean;
  finished: boolean;
}

const KEY = Symbol.for("skiff.context");

export function getContext(): SkiffContext | undefined {
  return (globalThis as Record<symbol, SkiffContext | undefined>)[KEY];
}

/**
 * Whether this code runs inside a container, to run a function: describing images there is pointless
 * (they are built) and impossible (the caller's files are not there).
 */
export function inContainer(): boolean {
  return getContext()?.where === "container";
}

/**
 * The id of the container this code runs in (the id `skiff container list` shows), or undefined outside a
 * container. Every container's process id is 1, so this is how a function tells its container from another.
 *
 * @example
 * export const where = app.function({}, async () => currentContainerId());
 */
export function currentContainerId(): string | undefined {
  return getContext()?.containerId;
}

export function setContext(context: SkiffContext): void {
  (globalThis as Record<symbol, SkiffContext | undefined>)[KEY] = context;
}
