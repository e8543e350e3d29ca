import type { FunctionSpec, SpecOverrides } from "@skiff/protocol";
import type { SecretStore, Store } from "@skiff/store";
import type { Logger } from "pino";
import { Dispatcher } from "./dispatcher.js";
import { Hub } from "./hub.js";
import { Persister } from "./persister.js";
import { InputQueue } from "./queue.js";
import { FunctionTimings } from "./timings.js";
import { WorkerRegistry } from "./workers.js";

/**
 * What the engine knows of a pool of containers: a function, a class with one set of parameter values,
 * or either with other options from `withOptions` (id `BASE~PARAMS~OPTIONS`, see splitPoolId). Deploys
 * update it in place.
 */
export interface FunctionInfo {
  id: string;
  /** The functions row: the function or class itself. */
  baseId: string;
  appId: string;
  appName: string;
  /** The app's workspace: only its tokens may call it. */
  workspace: string;
  /** The app's environment: where its named secrets live. */
  env: string;
  bundleHash: string;
  spec: FunctionSpec;
  /** The app version whose code and spec this is. */
  version: number;
  /** Why it takes no calls (its app stopped, or a deploy removed it), if it does not. */
  stopped: string | undefined;
  /** A class pool's parameter values, as JSON for the runner. */
  params: string | undefined;
  /** A variant's options (`withOptions`), already applied to `spec`. */
  overrides: SpecOverrides | undefined;
}

/**
 * Who makes a call: a workspace's token reaches all of its functions; a container's token only those of
 * its own environment (`env`).
 */
export interface Caller {
  workspace: string;
  env?: string;
}

/** What memory keeps of a call: which chunks arrived (to drop resends) and how many inputs are unfinished. */
export interface CallState {
  functionId: string;
  chunks: Set<number>;
  unfinished: number;
  touchedAt: number;
}

/** What the engine is built from: the store, its log, and the named secrets if this server has them. */
export interface EngineOptions {
  store: Store;
  log: Logger;
  /** Named secrets, and the key that seals apps' local secret values (`store.box`, which follows a rotation); without them, functions with secrets cannot start. */
  secrets?: { store: SecretStore };
}

/** The state every system of the engine shares: the store, the in-memory queue, the workers and what memory keeps of pools and calls. */
export interface EngineState {
  readonly store: Store;
  readonly log: Logger;
  readonly secrets: EngineOptions["secrets"];
  /** Writes results, chunks and progress behind the queue. */
  readonly persister: Persister;
  /** Pushes results and log lines to their subscribers. */
  readonly hub: Hub;
  readonly workers: WorkerRegistry;
  readonly queue: InputQueue;
  readonly dispatcher: Dispatcher;
  readonly timings: FunctionTimings;
  /** The pools memory holds, by pool id. */
  readonly functions: Map<string, FunctionInfo>;
  readonly calls: Map<string, CallState>;
  /** Containers asked to start and not yet running, with when and for which function. */
  readonly starting: Map<string, { functionId: string; at: number }>;
  /** Pools that keep containers with no traffic (`minContainers`). */
  readonly warm: Set<string>;
  /** When a pool last failed to start for want of its secrets. */
  readonly cannotStart: Map<string, number>;
}

/** A fresh engine state over `options.store`: nothing queued, no worker connected. */
export function createEngineState(options: EngineOptions): EngineState {
  const { store, log } = options;
  const queue = new InputQueue();
  return {
    store,
    log,
    secrets: options.secrets,
    persister: new Persister(store, (err, attempt, dropped) =>
      dropped
        ? log.error({ err, attempt }, "a record could not be written to the store and was dropped")
        : log.error({ err, attempt }, "writing to the store failed; retrying"),
    ),
    hub: new Hub(),
    workers: new WorkerRegistry(),
    queue,
    dispatcher: new Dispatcher(queue),
    timings: new FunctionTimings(),
    functions: new Map(),
    calls: new Map(),
    starting: new Map(),
    warm: new Set(),
    cannotStart: new Map(),
  };
}
