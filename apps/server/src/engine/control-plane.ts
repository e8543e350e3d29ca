import { randomUUID } from "node:crypto";
import {
  type AttemptRef,
  buildSecretsOf,
  type ClientMessage,
  decodePoolPart,
  type ErrorCode,
  encodeMessage,
  type FunctionSpec,
  failurePayload,
  groupBy,
  HEARTBEAT_MS,
  type ImageSecrets,
  type ImageSpec,
  INFRA_RETRIES,
  LEASE_MS,
  type OutputStatus,
  type Payload,
  REGISTRY_LOGIN_KEYS,
  RESULT_TTL_MS,
  type RetryPolicy,
  registrySecretOf,
  runnerEnvironment,
  type ServerToClient,
  type SpecOverrides,
  type Terminal,
  type WorkerMessage,
  type WorkerOutput,
} from "@skiff/protocol";
import {
  type AppRow,
  type FinishedInput,
  type FunctionRow,
  INPUT_ID_BLOCK,
  ScheduleStore,
  type Scope,
  type SecretStore,
  type Store,
} from "@skiff/store";
import type { Logger } from "pino";
import { ApiError } from "../errors.js";
import { capacityProblem, waitingForCapacity } from "./capacity.js";
import { Dispatcher } from "./dispatcher.js";
import { Hub, type Subscriber, toResult } from "./hub.js";
import { readLocalSecrets } from "./local-secrets.js";
import { Persister } from "./persister.js";
import { poolOverrides, splitPoolId, withOverrides } from "./pool-options.js";
import { InputQueue, type QueuedInput } from "./queue.js";
import { Scheduler } from "./scheduler.js";
import { FunctionTimings } from "./timings.js";
import { type ContainerInfo, type WorkerConn, WorkerRegistry } from "./workers.js";

/** A running container as `GET /v1/containers` lists it. */
export interface ContainerView {
  id: string;
  worker: string;
  appId: string;
  function: string;
  /** A class pool's parameter values and a variant's options (JSON, space-separated), or "". */
  pool: string;
  state: string;
  version: number;
}

/** What `updateAutoscaler` may change at runtime. */
export type AutoscalerSettings = Partial<
  Pick<FunctionSpec, "minContainers" | "maxContainers" | "bufferContainers" | "scaledownWindowMs">
>;

/**
 * What the engine knows of a pool of containers: a function, a class with one set of parameter values,
 * or either with other options from `withOptions` (id `BASE~PARAMS~OPTIONS`, see splitPoolId). Deploys
 * update it in place.
 */
interface FunctionInfo {
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

function reaches(caller: Caller, info: FunctionInfo): boolean {
  return info.workspace === caller.workspace && (caller.env === undefined || info.env === caller.env);
}

/** What memory keeps of a call: which chunks arrived (to drop resends) and how many inputs are unfinished. */
interface CallState {
  functionId: string;
  chunks: Set<number>;
  unfinished: number;
  touchedAt: number;
}

type Submit = Extract<ClientMessage, { t: "submit" }>;
type ShellMessage = Extract<ServerToClient, { t: "shell-output" | "shell-exit" }>;

export interface ControlPlaneOptions {
  store: Store;
  log: Logger;
  /** Named secrets, and the key that seals apps' local secret values (`store.box`, which follows a rotation); without them, functions with secrets cannot start. */
  secrets?: { store: SecretStore };
  /** Ephemeral apps whose client has been silent this long are stopped. */
  abandonAfterMs?: number;
}

/** Calls whose inputs all finished are forgotten (resends then check the store) after this long. */
const CALL_MEMORY_MS = 10 * 60_000;
/** A warm pool whose secrets could not be resolved tries again after this long, not four times a second. */
const CANNOT_START_BACKOFF_MS = 30_000;
/** How often expired leases and due retries are looked for. */
const TICK_MS = 1000;
/** How often a pool whose containers wait for room says so to its app's log watchers. */
const WAITING_NOTICE_MS = 15_000;

/**
 * The server's engine. Inputs are queued, leased and retried in memory (`InputQueue`), so a call goes
 * from submit to a container and back without waiting on the store; the `Persister` writes behind it,
 * and a submit is acknowledged (a worker's outputs confirmed) once durable. A restart reloads the
 * unfinished inputs and holds them until the workers that may still run them have said hello.
 */
export class ControlPlane {
  readonly hub = new Hub();
  /** Stopped apps whose log watchers wait for their containers' last lines (see endLogsOnceStopped). */
  private readonly endingLogs = new Set<string>();
  readonly workers = new WorkerRegistry();
  readonly queue = new InputQueue();
  readonly dispatcher = new Dispatcher(this.queue);
  private readonly persister: Persister;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly functions = new Map<string, FunctionInfo>();
  private readonly calls = new Map<string, CallState>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly timings = new FunctionTimings();
  /** Containers asked to start and not yet running, with when and for which function. */
  private readonly starting = new Map<string, { functionId: string; at: number }>();
  /** Pools that keep containers with no traffic (`minContainers`). */
  private readonly warm = new Set<string>();
  private ids = { next: 0, end: 0 };
  private nextBlock: Promise<number> | undefined;
  /** After a restart: workers that may still run inputs, not yet heard from. */
  private awaited = new Set<string>();
  /** When `tick` last ran. */
  private lastTick = Date.now();
  /** Image builds asked of workers, by request id. */
  private readonly builds = new Map<
    number,
    { workerId: string; onLines: (lines: string[]) => void; done: (error?: string, exported?: string) => void }
  >();
  private nextBuild = 1;
  /** Open shells: the worker running each, and where its output goes. */
  private readonly shells = new Map<string, { worker: WorkerConn; send: (message: ShellMessage) => void }>();
  private scaling: Promise<void> | undefined;
  private scaleAgain = false;
  private readonly abandonAfterMs: number;
  private readonly secrets: ControlPlaneOptions["secrets"];
  /** When a pool last failed to start for want of its secrets. */
  private readonly cannotStart = new Map<string, number>();
  /** When a pool with work and no room last said it waits for capacity. */
  private readonly waitingNoticed = new Map<string, number>();
  /** Runs the schedules of deployed functions. */
  readonly scheduler: Scheduler;

  constructor(options: ControlPlaneOptions) {
    this.store = options.store;
    this.log = options.log;
    this.persister = new Persister(options.store, (err, attempt, dropped) =>
      dropped
        ? this.log.error({ err, attempt }, "a record could not be written to the store and was dropped")
        : this.log.error({ err, attempt }, "writing to the store failed; retrying"),
    );
    this.abandonAfterMs = options.abandonAfterMs ?? 60_000;
    this.secrets = options.secrets;
    this.scheduler = new Scheduler({
      schedules: new ScheduleStore(options.store.db),
      log: options.log,
      submit: (functionId) => this.submitScheduled(functionId),
      // Calls are remembered for a while after they finish, and unfinished ones are reloaded at restart.
      unfinished: (callId) => (this.calls.get(callId)?.unfinished ?? 0) > 0,
    });
  }

  /** Reloads unfinished inputs, then starts the periodic work. */
  async start(): Promise<void> {
    await this.recover();
    for (const id of await this.store.warmFunctions()) this.warm.add(id);
    const every = (ms: number, fn: () => unknown) => {
      const timer = setInterval(async () => {
        try {
          await fn();
        } catch (error) {
          this.log.error({ err: error }, "periodic task failed");
        }
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(250, () => this.autoscale());
    every(TICK_MS, () => this.tick());
    every(3000, () => this.store.touchWorkers(this.workers.all().map((w) => w.id)));
    every(5000, () => this.stopAbandonedApps());
    every(60_000, () => this.forgetOldCalls());
    every(3_600_000, () => this.store.deleteFinished(RESULT_TTL_MS));
    this.scheduler.start();
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    await this.scheduler.stop();
    await this.persister.flushed();
  }

  async functionInfo(functionId: string): Promise<FunctionInfo> {
    const cached = this.functions.get(functionId);
    if (cached) return cached;
    const pool = splitPoolId(functionId);
    if (pool) {
      const base = await this.functionInfo(pool.baseId);
      const overrides = pool.options === undefined ? undefined : poolOverrides(base.spec, pool.options);
      const info: FunctionInfo = {
        ...base,
        id: functionId,
        params: pool.params === undefined ? undefined : classParams(base.spec, pool.params),
        overrides,
        spec: overrides ? withOverrides(base.spec, overrides) : base.spec,
      };
      this.functions.set(functionId, info);
      if (overrides && minContainersOf(info) > 0 && !info.stopped) this.warm.add(info.id);
      return info;
    }
    const row = await this.store.getFunction(functionId);
    if (!row) throw missingFunction(functionId);
    const info: FunctionInfo = {
      id: row.id,
      baseId: row.id,
      appId: row.appId,
      appName: row.app.name,
      workspace: row.app.workspace,
      env: row.app.env,
      bundleHash: row.app.bundleHash,
      spec: row.spec,
      version: row.app.version,
      stopped: stoppedReason(row.app, row),
      params: undefined,
      overrides: undefined,
    };
    this.functions.set(functionId, info);
    if (info.spec.minContainers > 0 && !info.stopped) this.warm.add(info.id);
    return info;
  }

  /** A function (or pool) the caller may call; anything else is "not found", as a missing one. */
  private async functionIn(caller: Caller, functionId: string): Promise<FunctionInfo> {
    const info = await this.functionInfo(functionId).catch((error: unknown) => {
      if (error instanceof ApiError && error.code === "NOT_FOUND") return undefined;
      throw error;
    });
    if (!info || !reaches(caller, info)) throw missingFunction(functionId);
    return info;
  }

  /**
   * That a call exists and is of a function the caller reaches, else NOT_FOUND (the same for both). A
   * call not in memory is one whose first chunk was written before (memory holds a call from its first
   * submit).
   */
  private async checkCall(caller: Caller, callId: string): Promise<void> {
    const functionId = this.calls.get(callId)?.functionId ?? (await this.store.getCall(callId))?.functionId;
    const info = functionId ? await this.functionInfo(functionId).catch(() => undefined) : undefined;
    if (!info || !reaches(caller, info)) throw new ApiError("NOT_FOUND", `no call ${callId}: results are kept 7 days`);
  }

  /**
   * Streams an app's logs to a subscriber, if the app is the workspace's; `resume` (a reconnect) first
   * sends the lines of the last minute.
   */
  async subscribeLogs(workspace: string, appId: string, subscriber: Subscriber, resume = false): Promise<void> {
    const app = await this.store.getApp(appId);
    if (app?.workspace !== workspace) throw new ApiError("NOT_FOUND", `no app ${appId}: see \`skiff app list\``);
    this.hub.subscribeLogs(appId, subscriber, resume);
  }

  /** The pools of a function or class that memory holds. */
  private poolsOf(baseId: string): FunctionInfo[] {
    return [...this.functions.values()].filter((info) => info.baseId === baseId);
  }

  // ---- apps ----

  /**
   * A new version of an app is in the store: its pools take the new code and spec, containers of older
   * versions keep serving until a container of the new one runs in their pool (then they drain), and
   * functions it left out fail their waiting inputs.
   */
  async deployed(app: AppRow, functions: FunctionRow[]): Promise<void> {
    await this.scheduler.sync(app.id, functions);
    const current = new Map(functions.map((row) => [row.id, row]));
    const removed: FunctionInfo[] = [];
    for (const info of this.functions.values()) {
      if (info.appId !== app.id) continue;
      const row = current.get(info.baseId);
      // A function the new version left out keeps its last spec and counts as removed.
      Object.assign(info, {
        bundleHash: app.bundleHash,
        version: app.version,
        stopped: stoppedReason(app, { version: row?.version ?? 0 }),
        ...(row ? { spec: info.overrides ? withOverrides(row.spec, info.overrides) : row.spec } : {}),
      });
      if (info.stopped) removed.push(info);
    }
    const inputs = removed.flatMap((info) => this.queue.ofFunction(info.id));
    await this.failAll(inputs, "CANCELLED", failurePayload("the function was removed by a deploy"));
    this.stopContainers((container) => removed.some((info) => info.id === container.functionId), "removed by a deploy");
    for (const row of functions) if (row.spec.minContainers > 0) this.warm.add(row.id);
    this.requestAutoscale();
  }

  /** Overrides a function's autoscaling until its next deploy; applies to every pool of a class. */
  async updateAutoscaler(workspace: string, functionId: string, patch: AutoscalerSettings): Promise<FunctionSpec> {
    const pool = await this.functionIn({ workspace }, functionId);
    const info = await this.functionInfo(pool.baseId);
    if (info.stopped) throw new ApiError("CONFLICT", `function ${info.spec.name} ${info.stopped}`);
    const spec = { ...info.spec, ...patch };
    if (spec.maxContainers < Math.max(1, spec.minContainers)) {
      throw new ApiError(
        "BAD_REQUEST",
        `maxContainers (${spec.maxContainers}) must be at least minContainers (${spec.minContainers}) and 1`,
      );
    }
    await this.store.updateFunctionSpec(info.baseId, spec);
    for (const pool of this.poolsOf(info.baseId))
      pool.spec = pool.overrides ? withOverrides(spec, pool.overrides) : spec;
    if (spec.minContainers > 0) this.warm.add(info.baseId);
    this.requestAutoscale();
    return spec;
  }

  /** The containers the workers run for a workspace's apps, for `skiff container list`. */
  containers(workspace: string): ContainerView[] {
    return this.workers.all().flatMap((worker) =>
      [...worker.containers.values()].flatMap((container) => {
        const info = this.functions.get(container.functionId);
        if (info?.workspace !== workspace) return [];
        return {
          id: container.id,
          worker: worker.name,
          appId: info?.appId ?? "",
          function: info?.spec.name ?? container.functionId,
          pool: [info.params, info.overrides && JSON.stringify(info.overrides)].filter(Boolean).join(" "),
          state: container.state,
          version: container.version,
        };
      }),
    );
  }

  /**
   * Refuses functions no connected worker can ever run (BAD_REQUEST naming the function, the largest
   * worker and what to lower); with no worker connected, calls wait for one.
   */
  checkCapacity(specs: FunctionSpec[]): void {
    const capacities = this.workers.all().map((worker) => worker.capacity);
    for (const spec of specs) {
      const problem = capacityProblem(`${spec.kind} "${spec.name}"`, spec, capacities);
      if (problem) throw new ApiError("BAD_REQUEST", problem);
    }
  }

  // ---- calls ----

  /** Queues a chunk of a call's inputs and hands them to waiting containers; resolves once durable. */
  async submit(call: Submit, subscriber: Subscriber | undefined, caller: Caller): Promise<void> {
    const fn = await this.functionIn(caller, call.functionId);
    if (fn.stopped) throw new ApiError("CONFLICT", `${fn.appName}.${fn.spec.name} ${fn.stopped}`);
    this.checkCapacity([fn.spec]);
    const { inputs } = call;
    if (inputs.length === 0) return;
    const firstIdx = inputs[0]!.idx;
    if (inputs.length > INPUT_ID_BLOCK || inputs.some((input, i) => input.idx !== firstIdx + i))
      throw new ApiError("BAD_REQUEST", `submit at most ${INPUT_ID_BLOCK} inputs at once, with consecutive indices`);
    if (subscriber) this.hub.subscribeCall(call.callId, subscriber);
    if (this.calls.get(call.callId)?.chunks.has(firstIdx)) return this.persister.flushed(); // a resend we have
    // Marked before the first await, so that a resend racing this submit is recognized.
    const state = this.callState(call.callId, fn.id);
    state.chunks.add(firstIdx);
    const firstId = await this.takeIds(inputs.length).catch((error: unknown) => {
      state.chunks.delete(firstIdx);
      throw error;
    });
    const chunk = { callId: call.callId, functionId: fn.id, firstIdx, firstId, args: inputs.map((i) => i.args) };
    const queued = inputs.map((input, i) => newInput(String(firstId + i), call.callId, input.idx, fn.id, input.args));
    if (call.resent) {
      // A chunk this server does not hold in memory may be in the store from before a restart (and may
      // have run already): write first, queue only if new.
      if (!(await this.persister.chunk(chunk))) return;
      this.enqueue(state, queued);
      return;
    }
    this.enqueue(state, queued);
    await this.persister.chunk(chunk);
  }

  private enqueue(state: CallState, inputs: QueuedInput[]): void {
    state.unfinished += inputs.length;
    this.queue.add(inputs);
    this.dispatcher.serve(state.functionId);
    if (this.queue.load(state.functionId).pending > 0) this.requestAutoscale();
  }

  /** `count` consecutive input ids from the current block, reserving the next block ahead of need. */
  private async takeIds(count: number): Promise<number> {
    if (this.ids.next + count > this.ids.end) {
      const first = await (this.nextBlock ?? this.store.reserveInputIds());
      this.nextBlock = undefined;
      if (this.ids.next + count > this.ids.end) this.ids = { next: first, end: first + INPUT_ID_BLOCK };
    }
    const first = this.ids.next;
    this.ids.next += count;
    if (!this.nextBlock && this.ids.end - this.ids.next < INPUT_ID_BLOCK / 2) {
      this.nextBlock = this.store.reserveInputIds();
      this.nextBlock.catch(() => {
        this.nextBlock = undefined;
      });
    }
    return first;
  }

  private callState(callId: string, functionId: string): CallState {
    let state = this.calls.get(callId);
    if (!state) {
      state = { functionId, chunks: new Set(), unfinished: 0, touchedAt: Date.now() };
      this.calls.set(callId, state);
    }
    state.touchedAt = Date.now();
    return state;
  }

  /** Subscribes, then replays what already finished (the client ignores duplicates). */
  async subscribe(caller: Caller, callId: string, fromIdx: number, subscriber: Subscriber): Promise<void> {
    await this.checkCall(caller, callId);
    this.hub.subscribeCall(callId, subscriber);
    await this.persister.flushed();
    const finished = await this.store.results(callId, fromIdx);
    if (finished.length > 0) subscriber.pushResults(callId, finished.map(toResult));
  }

  async cancel(caller: Caller, callId: string): Promise<void> {
    await this.checkCall(caller, callId);
    await this.failAll(this.queue.ofCall(callId), "CANCELLED", failurePayload("the call was cancelled"));
  }

  /** A scheduled run: one input with no arguments. */
  private async submitScheduled(functionId: string): Promise<string> {
    const callId = randomUUID();
    const args = { inline: encodeMessage([]) };
    await this.submit(
      {
        t: "submit",
        rid: 0,
        functionId,
        callId,
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args }],
      },
      undefined,
      { workspace: (await this.functionInfo(functionId)).workspace },
    );
    return callId;
  }

  async stopApp(appId: string): Promise<void> {
    await this.store.stopApp(appId);
    await this.scheduler.schedules.removeApp(appId);
    const stopped = [...this.functions.values()].filter((info) => info.appId === appId);
    for (const info of stopped) {
      info.stopped = "is stopped: run or deploy it again";
      this.warm.delete(info.id);
    }
    const inputs = stopped.flatMap((info) => this.queue.ofFunction(info.id));
    await this.failAll(inputs, "CANCELLED", failurePayload("the app was stopped"));
    this.stopContainers(
      (container) => this.functions.get(container.functionId)?.appId === appId,
      "the app was stopped",
    );
    this.endingLogs.add(appId);
    this.endLogsOnceStopped(appId);
  }

  /**
   * Tells a stopped app's log watchers that its lines are all sent, once none of its containers is left: a
   * worker reports a container `stopped` after its last lines.
   */
  private endLogsOnceStopped(appId: string): void {
    if (!this.endingLogs.has(appId)) return;
    for (const worker of this.workers.all()) {
      for (const container of worker.containers.values())
        if (this.functions.get(container.functionId)?.appId === appId) return;
    }
    this.endingLogs.delete(appId);
    this.hub.endLogs(appId);
  }

  /** Asks the containers `which` picks to finish what they run and stop. */
  private stopContainers(which: (container: ContainerInfo) => boolean, reason: string): void {
    for (const worker of this.workers.all()) {
      for (const container of worker.containers.values())
        if (which(container)) this.stopContainer(worker, container, reason);
    }
  }

  private stopContainer(worker: WorkerConn, container: ContainerInfo, reason: string): void {
    if (container.stopping) return;
    container.stopping = true;
    this.dispatcher.release(container.id);
    worker.send({ t: "stop", containerId: container.id, reason });
  }

  /** Fails these inputs with `code`, killing the attempts that run; resolves once recorded. */
  private async failAll(inputs: QueuedInput[], code: ErrorCode, data: Uint8Array): Promise<void> {
    const running = inputs.filter((input) => input.state === "running");
    for (const [worker, attempts] of groupBy(running, (input) => this.workers.ownerOf(input.owner!))) {
      worker?.send({ t: "cancel", inputs: attempts.map((input) => ({ inputId: input.id, attempt: input.attempt })) });
    }
    this.hub.publishFinished(inputs.map((input) => this.finish(input, "failure", code, { inline: data })));
    await this.persister.flushed();
  }

  /** Takes an input out of the queue with its final result, and writes the result behind (see flushed). */
  private finish(input: QueuedInput, status: OutputStatus, code: ErrorCode | undefined, data: Payload): FinishedInput {
    this.queue.remove(input);
    void this.persister.result({
      inputId: input.id,
      callId: input.callId,
      idx: input.idx,
      attempt: input.attempt,
      userFailures: input.userFailures,
      infraFailures: input.infraFailures,
      status,
      code,
      data,
    });
    const state = this.calls.get(input.callId);
    if (state && --state.unfinished === 0) void this.persister.finishedCall(input.callId);
    return { inputId: input.id, callId: input.callId, idx: input.idx, status, code, data };
  }

  /**
   * Puts back an input whose attempt the platform lost (container or worker gone, lease expired), outside
   * the user's retry budget; past INFRA_RETRIES such losses it fails with `message`.
   */
  private lose(input: QueuedInput, message: string): FinishedInput | undefined {
    input.infraFailures += 1;
    if (input.infraFailures > INFRA_RETRIES) {
      const data = failurePayload(`${message}; gave up after ${INFRA_RETRIES} retries`);
      return this.finish(input, "failure", "CONTAINER_CRASHED", { inline: data });
    }
    const now = Date.now();
    this.queue.requeue(input, now, now);
    this.saveProgress(input, now);
    return undefined;
  }

  private saveProgress(input: QueuedInput, runAfterMs: number): void {
    void this.persister.progress({
      inputId: input.id,
      attempt: input.attempt,
      userFailures: input.userFailures,
      infraFailures: input.infraFailures,
      runAfterMs,
    });
  }

  /** Loses every input in `inputs`, then tells callers and containers. */
  private loseAll(inputs: QueuedInput[], message: string): void {
    if (inputs.length === 0) return;
    this.hub.publishFinished(inputs.flatMap((input) => this.lose(input, message) ?? []));
    this.dispatcher.serveAll();
    this.requestAutoscale();
  }

  /**
   * Builds an image on a worker now (what a container start would otherwise do first); `onLines` gets the
   * build's output. Resolves once built, rejects with the failed step.
   */
  buildImage(
    image: ImageSpec,
    onLines: (lines: string[]) => void,
    options: { export?: boolean; secrets?: ImageSecrets } = {},
  ): Promise<string | undefined> {
    // Where a small container would go (best fit): builds land where containers are likely to run.
    const worker = this.workers.place({ cpu: 0.001, memoryMiB: 1 });
    if (!worker) {
      return Promise.reject(
        new ApiError("UNAVAILABLE", "no worker is connected to build on: start one with `skiff worker`"),
      );
    }
    const rid = this.nextBuild++;
    return new Promise((resolve, reject) => {
      this.builds.set(rid, {
        workerId: worker.id,
        onLines,
        done: (error, exported) => {
          this.builds.delete(rid);
          if (error) reject(new ApiError("BAD_REQUEST", error));
          else resolve(exported);
        },
      });
      worker.send({
        t: "build",
        rid,
        image,
        export: options.export ?? false,
        ...options.secrets,
      });
    });
  }

  /** Opens a shell in a container of `image` on a worker; its output and exit go to `send`. */
  openShell(
    shell: { sid: string; image: ImageSpec; command: string[]; tty?: Terminal | undefined },
    send: (message: ShellMessage) => void,
    secrets: ImageSecrets = {},
  ): void {
    const worker = this.workers.place({ cpu: 1, memoryMiB: 1024 });
    if (!worker) throw new ApiError("UNAVAILABLE", "no worker has room for a shell: start one with `skiff worker`");
    this.shells.set(shell.sid, { worker, send });
    const { sid, image, command, tty } = shell;
    worker.send({
      t: "shell-open",
      sid,
      image,
      command,
      ...(tty ? { tty } : {}),
      ...secrets,
    });
  }

  shellResize(sid: string, rows: number, cols: number): void {
    const shell = this.shells.get(sid);
    if (!shell) throw new ApiError("NOT_FOUND", `no shell ${sid}: it has ended`);
    shell.worker.send({ t: "shell-resize", sid, rows, cols });
  }

  shellInput(sid: string, data: Uint8Array | undefined, eof: boolean): void {
    const shell = this.shells.get(sid);
    if (!shell) throw new ApiError("NOT_FOUND", `no shell ${sid}: it has ended`);
    shell.worker.send({ t: "shell-input", sid, ...(data ? { data } : {}), eof });
  }

  /** Ends a shell whose client went away. */
  closeShell(sid: string): void {
    const shell = this.shells.get(sid);
    this.shells.delete(sid);
    shell?.worker.send({ t: "shell-close", sid });
  }

  // ---- workers ----

  async workerConnected(
    worker: WorkerConn,
    runtime: string,
    containers: string[],
    held: (AttemptRef & { containerId?: string | undefined })[],
  ): Promise<void> {
    await this.store.upsertWorker({ id: worker.id, name: worker.name, runtime, capacity: worker.capacity });
    const previous = this.workers.remove(worker.id);
    // Containers that survived a server restart or a reconnect: adopt those we know and still want.
    const known = new Map((await this.store.liveContainers()).map((c) => [c.id, c]));
    const gone = [...known.values()].filter((c) => c.workerId === worker.id && !containers.includes(c.id));
    if (gone.length > 0)
      await this.store.stopContainers(
        gone.map((c) => c.id),
        "worker restarted",
      );
    for (const containerId of containers) {
      const row = known.get(containerId);
      const info = row ? await this.functionInfo(row.functionId).catch(() => undefined) : undefined;
      if (!row || !info || info.stopped) {
        worker.send({ t: "stop", containerId, reason: "unknown to the server" });
        continue;
      }
      worker.containers.set(containerId, {
        id: containerId,
        functionId: row.functionId,
        cpu: info.spec.cpu,
        memoryMiB: info.spec.memoryMiB,
        state: "running",
        version: row.version,
        stopping: false,
      });
    }
    // What it still runs stays leased to it; anything else leased to its containers was lost with them.
    const now = Date.now();
    const holds = new Set<QueuedInput>();
    for (const ref of held) {
      const input = this.queue.get(ref.inputId);
      if (!input || (input.state === "running" && input.attempt > ref.attempt)) continue;
      this.queue.adopt(input, ref.containerId ?? `worker:${worker.id}`, ref.attempt, now + LEASE_MS, now);
      holds.add(input);
    }
    const mine = new Set([...(previous?.containers.keys() ?? []), ...gone.map((c) => c.id), ...containers]);
    mine.add(`worker:${worker.id}`);
    const lost = [...mine].flatMap((owner) => this.queue.ofOwner(owner)).filter((input) => !holds.has(input));
    this.loseAll(lost, "the input's worker restarted");
    this.workers.add(worker);
    this.log.info({ worker: worker.name, adopted: worker.containers.size, held: holds.size }, "worker connected");
    if (this.awaited.delete(worker.id) && this.awaited.size === 0) this.releaseHeld();
    this.requestAutoscale();
  }

  async workerDisconnected(worker: WorkerConn): Promise<void> {
    if (this.workers.get(worker.id) !== worker) return;
    this.workers.remove(worker.id);
    for (const container of worker.containers.values()) this.dispatcher.release(container.id);
    for (const [sid, shell] of this.shells) {
      if (shell.worker !== worker) continue;
      shell.send({ t: "shell-exit", sid, code: null, error: "the worker running the shell disconnected" });
      this.shells.delete(sid);
    }
    for (const build of [...this.builds.values()]) {
      if (build.workerId === worker.id) build.done("the worker building the image disconnected; build again");
    }
    // Its leases expire unless it comes back and says what it still holds; the tick requeues them then.
    this.log.warn({ worker: worker.name }, "worker disconnected");
  }

  async workerMessage(worker: WorkerConn, message: WorkerMessage): Promise<void> {
    switch (message.t) {
      case "claim": {
        const container = worker.containers.get(message.containerId);
        const info = container ? await this.functionInfo(container.functionId) : undefined;
        if (!container || !info || info.stopped || container.stopping || this.replaced(container, info)) {
          worker.send({ t: "inputs", rid: message.rid, inputs: [], shutdown: true });
          return;
        }
        const timeoutMs = info.spec.timeoutMs;
        this.dispatcher.claim({
          functionId: container.functionId,
          containerId: container.id,
          max: message.max,
          respond: (inputs) =>
            worker.send({
              t: "inputs",
              rid: message.rid,
              inputs: inputs.map((input) => ({
                inputId: input.id,
                attempt: input.attempt,
                args: input.args,
                timeoutMs,
              })),
              shutdown: false,
            }),
        });
        return;
      }
      case "outputs":
        await this.grantOutputBlobs(message.outputs);
        return this.outputs(worker, message.seq, message.outputs);
      case "unclaim":
        this.dispatcher.release(message.containerId);
        return;
      case "return": {
        // Never run: back to the queue, no failure counted.
        const now = Date.now();
        for (const input of this.running(message.inputs)) this.queue.requeue(input, now, now);
        this.dispatcher.serveAll();
        this.requestAutoscale();
        return;
      }
      case "heartbeat": {
        const until = Date.now() + LEASE_MS;
        for (const input of this.running(message.inputs)) this.queue.extend(input, until);
        return;
      }
      case "logs":
        this.hub.publishLogs(message.lines);
        // Pushed to its watchers (nothing keeps logs longer): the worker may forget the batch.
        if (message.seq !== undefined) worker.send({ t: "logs-recorded", seq: message.seq });
        return;
      case "started": {
        const container = worker.containers.get(message.containerId);
        if (container) container.state = "running";
        const started = this.starting.get(message.containerId);
        this.starting.delete(message.containerId);
        if (started) this.timings.noteColdStart(started.functionId, Date.now() - started.at);
        await this.store.setContainerState(message.containerId, "running");
        // A container of a new version runs: the older ones of its pool drain (a rolling deploy).
        const info = container && this.functions.get(container.functionId);
        if (container && info && container.version >= info.version) {
          this.stopContainers(
            (other) => other.functionId === container.functionId && other.version < info.version,
            `replaced by version ${info.version}`,
          );
        }
        return;
      }
      case "idle": {
        // Idle past its scaledown window: it may stop unless its pool needs it warm or has work waiting.
        const container = worker.containers.get(message.containerId);
        const info = container && (await this.functionInfo(container.functionId).catch(() => undefined));
        if (!container || !info) return;
        const outdated = container.version < info.version;
        if (outdated || info.stopped || this.currentContainers(info).length > minContainersOf(info)) {
          if (this.queue.load(info.id).pending === 0) this.stopContainers((c) => c === container, "idle");
        }
        return;
      }
      case "stopped": {
        const container = worker.containers.get(message.containerId);
        worker.containers.delete(message.containerId);
        this.starting.delete(message.containerId);
        this.dispatcher.release(message.containerId);
        await this.store.setContainerState(message.containerId, "stopped", message.reason);
        const reason = message.message ?? `the container stopped (${message.reason})`;
        this.loseAll([...this.running(message.inFlight), ...this.queue.ofOwner(message.containerId)], reason);
        const appId = container && this.functions.get(container.functionId)?.appId;
        if (appId) this.endLogsOnceStopped(appId);
        if ((message.reason === "init-failed" || message.reason === "start-failed") && container) {
          await this.failFunction(
            container.functionId,
            message.message ?? "the container failed to start",
            message.error,
          );
        }
        // Killed for memory before it was ready: every container of the pool would be, so its calls fail.
        if (message.reason === "oom" && container?.state === "starting") {
          const limit = `${container.memoryMiB} MiB`;
          await this.failFunction(
            container.functionId,
            message.message ?? `the container ran out of memory (limit ${limit}) while starting: raise \`memory\``,
            undefined,
            "OUT_OF_MEMORY",
          );
        }
        this.requestAutoscale();
        return;
      }
      case "shell-output":
        this.shells.get(message.sid)?.send(message);
        return;
      case "shell-exit":
        this.shells.get(message.sid)?.send(message);
        this.shells.delete(message.sid);
        return;
      case "build-log":
        this.builds.get(message.rid)?.onLines(message.lines);
        return;
      case "build-done":
        this.builds.get(message.rid)?.done(message.error, message.exported);
        return;
      case "hello":
        return;
    }
  }

  /** Whether a container of an older version has a running container of the current one in its pool. */
  private replaced(container: ContainerInfo, info: FunctionInfo): boolean {
    if (container.version >= info.version) return false;
    return this.currentContainers(info).some((c) => c.state === "running");
  }

  /** A pool's containers of its current version that are not stopping: those the autoscaler counts. */
  private currentContainers(info: FunctionInfo): ContainerInfo[] {
    return this.workers.containersOf(info.id).filter((c) => isCurrent(c, info));
  }

  /** The inputs of these refs that still run under that attempt. */
  private running(refs: AttemptRef[]): QueuedInput[] {
    const out = new Set<QueuedInput>();
    for (const ref of refs) {
      const input = this.queue.get(ref.inputId);
      if (input?.state === "running" && input.attempt === ref.attempt) out.add(input);
    }
    return [...out];
  }

  /** Results too large to inline are blobs the worker put: their callers' workspaces may read them. */
  private async grantOutputBlobs(outputs: WorkerOutput[]): Promise<void> {
    const byWorkspace = new Map<string, string[]>();
    for (const output of outputs) {
      if (!("blob" in output.data)) continue;
      const input = this.queue.get(output.inputId);
      const workspace = input && this.functions.get(input.functionId)?.workspace;
      if (!workspace) continue;
      const hashes = byWorkspace.get(workspace) ?? [];
      byWorkspace.set(workspace, hashes);
      hashes.push(output.data.blob);
    }
    for (const [workspace, hashes] of byWorkspace) await this.store.grantBlobs(workspace, hashes);
  }

  /**
   * Outputs of a worker. Successes reach their callers at once, before the durable write: if this
   * server dies first, the input runs again (at least once) and the caller already has its result. The
   * worker hears `outputs-recorded` once they are durable.
   */
  private outputs(worker: WorkerConn, seq: number, outputs: WorkerOutput[]): void {
    const now = Date.now();
    const finished: FinishedInput[] = [];
    const lost: QueuedInput[] = [];
    let requeued = false;
    for (const output of outputs) {
      const input = this.queue.get(output.inputId);
      if (!input) continue; // finished already: the first success wins
      const current = input.state === "running" && input.attempt === output.attempt;
      if (current) this.timings.noteRun(input.functionId, now - input.dispatchedAt);
      if (output.status === "success" && !output.infra) {
        finished.push(this.finish(input, "success", undefined, output.data));
      } else if (!current) {
        // A failure counts only for the attempt that holds the input; older attempts' reports change nothing.
      } else if (output.infra) {
        lost.push(input);
      } else {
        const policy = this.functions.get(input.functionId)?.spec.retries;
        if (policy && output.retryable && input.userFailures < policy.maxRetries) {
          const runAfter = now + backoffMs(policy, input.userFailures);
          input.userFailures += 1;
          this.queue.requeue(input, runAfter, now);
          this.saveProgress(input, runAfter);
          requeued = true;
        } else {
          input.userFailures += 1;
          finished.push(this.finish(input, "failure", output.code ?? "USER_ERROR", output.data));
        }
      }
    }
    this.hub.publishFinished(finished);
    this.loseAll(lost, "the container was lost");
    if (requeued) this.requestAutoscale();
    // Results, retry counts and requeues of these outputs are all queued by now.
    void this.persister.flushed().then(() => worker.send({ t: "outputs-recorded", seq }));
  }

  /** Fails every waiting input of a function whose containers cannot start: retrying would loop. */
  private async failFunction(
    functionId: string,
    message: string,
    error: Uint8Array | undefined,
    code: ErrorCode = "INIT_FAILED",
  ): Promise<void> {
    const waiting = this.queue.ofFunction(functionId).filter((input) => input.state !== "running");
    await this.failAll(waiting, code, error ?? failurePayload(message));
    this.log.warn({ functionId, failed: waiting.length, message }, "function failed to start");
  }

  // ---- restart ----

  /**
   * Reloads unfinished inputs. Those of workers seen in the last lease period are held until each such
   * worker says hello (and which inputs it still runs) or the lease period ends; then the rest run again.
   */
  private async recover(): Promise<void> {
    const unfinished = await this.store.unfinishedInputs();
    this.awaited = new Set(unfinished.length > 0 ? await this.store.recentWorkers(LEASE_MS) : []);
    this.queue.add(
      unfinished.map((row) => ({
        ...newInput(row.inputId, row.callId, row.idx, row.functionId, row.args),
        attempt: row.attempt,
        userFailures: row.userFailures,
        infraFailures: row.infraFailures,
        state: "held",
        until: row.runAfterMs,
      })),
    );
    for (const row of unfinished) this.callState(row.callId, row.functionId).unfinished++;
    if (unfinished.length > 0)
      this.log.info({ inputs: unfinished.length, workers: this.awaited.size }, "reloaded unfinished inputs");
    if (this.awaited.size === 0) this.releaseHeld();
    else setTimeout(() => this.releaseHeld(), LEASE_MS).unref();
  }

  /**
   * Puts every input still held since the restart back in the queue (delayed ones after their backoff),
   * in the order they were submitted: behind inputs lost since, so that a worker that dies after the
   * restart has its inputs run again at once rather than after the whole backlog.
   */
  private releaseHeld(): void {
    this.awaited.clear();
    const now = Date.now();
    for (const input of this.queue.held()) this.queue.requeue(input, input.until, now, "fresh");
    this.dispatcher.serveAll();
    this.requestAutoscale();
  }

  // ---- periodic work ----

  /** Requeues expired leases and retries whose backoff ended. */
  tick(): void {
    const now = Date.now();
    // Late by more than a heartbeat, this process could not run (a slow disk under the embedded store, a
    // long pause): the heartbeats that came meanwhile are read after this timer. Expire nothing before then.
    const late = now - this.lastTick > TICK_MS + HEARTBEAT_MS;
    this.lastTick = now;
    const expired = late ? [] : this.queue.expired(now);
    if (expired.length > 0) this.log.warn({ inputs: expired.length }, "requeueing inputs whose lease expired");
    this.loseAll(expired, "the input's worker stopped answering");
    if (this.queue.promoteDue(now) > 0) {
      this.dispatcher.serveAll();
      this.requestAutoscale();
    }
  }

  /** Forgets finished calls past CALL_MEMORY_MS, start failures past their backoff, and old waiting notices. */
  private forgetOldCalls(): void {
    const now = Date.now();
    for (const [callId, state] of this.calls) {
      if (state.unfinished === 0 && state.touchedAt < now - CALL_MEMORY_MS) this.calls.delete(callId);
    }
    for (const [poolId, at] of this.cannotStart)
      if (at < now - CANNOT_START_BACKOFF_MS) this.cannotStart.delete(poolId);
    for (const [poolId, at] of this.waitingNoticed)
      if (at < now - WAITING_NOTICE_MS) this.waitingNoticed.delete(poolId);
  }

  private async stopAbandonedApps(): Promise<void> {
    for (const appId of await this.store.abandonedApps(this.abandonAfterMs)) {
      this.log.info({ appId }, "stopping ephemeral app whose client went away");
      await this.stopApp(appId);
    }
  }

  /** Runs the autoscaler soon; calls that arrive while it runs cause one more pass. */
  requestAutoscale(): void {
    if (this.scaling) {
      this.scaleAgain = true;
      return;
    }
    this.scaling = this.autoscale()
      .catch((error) => this.log.error({ err: error }, "autoscale failed"))
      .finally(() => {
        this.scaling = undefined;
        if (this.scaleAgain) {
          this.scaleAgain = false;
          this.requestAutoscale();
        }
      });
  }

  /**
   * Per pool with work, warm containers or containers of an older version: desired = clamp(ceil((ready +
   * running) / targetInputs) + buffer, min, max), or min with no work. Only containers of the current
   * version count; older ones stop once the pool has nothing for them (see "started" for the rest).
   */
  private async autoscale(): Promise<void> {
    if (this.workers.all().length === 0) return;
    // One pass over the containers per round, not one per pool: idle pools are visited every round.
    const byPool = this.workers.containersByPool();
    const pools = new Set([...this.queue.loads().map(([id]) => id), ...this.warm, ...byPool.keys()]);
    for (const functionId of pools) {
      const info = await this.functionInfo(functionId).catch(() => undefined);
      if (!info || info.stopped) {
        this.warm.delete(functionId);
        continue;
      }
      const { spec } = info;
      const load = this.queue.load(functionId);
      const work = load.pending + load.running;
      const min = minContainersOf(info);
      const target = Math.min(spec.targetInputs ?? spec.maxInputs, spec.maxInputs);
      const desired =
        work === 0
          ? min
          : Math.min(spec.maxContainers, Math.max(min, Math.ceil(work / target) + spec.bufferContainers));
      if (work === 0 && Date.now() - (this.cannotStart.get(info.id) ?? 0) < CANNOT_START_BACKOFF_MS) continue;
      const containers = byPool.get(functionId) ?? [];
      if (desired === 0) {
        // The pool wants no container: older ones go now. Otherwise they go once a new one runs ("started").
        for (const { worker, container } of containers) {
          if (container.version < info.version)
            this.stopContainer(worker, container, `replaced by version ${info.version}`);
        }
      }
      const live = containers.filter(({ container }) => isCurrent(container, info)).length;
      for (let i = live; i < desired; i++) {
        // Beyond the minimum, a new container must beat the live ones to the end of the backlog.
        if (i >= min && !this.timings.worthAnotherContainer(info.id, work, i * target)) break;
        const worker = this.workers.place({ cpu: spec.cpu, memoryMiB: spec.memoryMiB });
        if (!worker) {
          this.log.debug({ function: spec.name }, "no worker has room for another container");
          // Idle containers of other pools, kept warm only by their scaledown window, give way to waiting work.
          if (load.pending > 0 && !(await this.makeRoom(spec))) this.sayWaiting(info);
          break;
        }
        this.waitingNoticed.delete(info.id);
        if (!(await this.startContainer(worker, info))) break;
      }
    }
  }

  /**
   * Makes room on one worker for a container of `need` by stopping idle containers (running, holding no
   * input, of a pool with nothing waiting and more containers than its minContainers), the fewest needed.
   * True when room is made or already on its way (containers stopping); the caller places it next round.
   */
  private async makeRoom(need: { cpu: number; memoryMiB: number }): Promise<boolean> {
    for (const worker of this.workers.all()) {
      let cpu = worker.capacity.cpu;
      let memory = worker.capacity.memoryMiB;
      const idle: ContainerInfo[] = [];
      const spare = new Map<string, number>();
      for (const container of worker.containers.values()) {
        if (container.stopping) continue;
        cpu -= container.cpu;
        memory -= container.memoryMiB;
        if (container.state !== "running" || this.queue.ofOwner(container.id).length > 0) continue;
        const info = await this.functionInfo(container.functionId).catch(() => undefined);
        if (!info || this.queue.load(info.id).pending > 0) continue;
        if (!spare.has(info.id)) spare.set(info.id, this.currentContainers(info).length - minContainersOf(info));
        idle.push(container);
      }
      if (cpu >= need.cpu && memory >= need.memoryMiB) return true;
      const chosen: ContainerInfo[] = [];
      for (const container of idle) {
        if (cpu >= need.cpu && memory >= need.memoryMiB) break;
        const left = spare.get(container.functionId) ?? 0;
        if (left <= 0) continue;
        spare.set(container.functionId, left - 1);
        chosen.push(container);
        cpu += container.cpu;
        memory += container.memoryMiB;
      }
      if (cpu < need.cpu || memory < need.memoryMiB) continue;
      for (const container of chosen) this.stopContainer(worker, container, "idle: its room went to waiting work");
      return true;
    }
    return false;
  }

  /** Tells the app's log watchers (`skiff run`, `skiff app logs`) that a pool waits for room, now and then. */
  private sayWaiting(info: FunctionInfo): void {
    const now = Date.now();
    if (now - (this.waitingNoticed.get(info.id) ?? 0) < WAITING_NOTICE_MS) return;
    this.waitingNoticed.set(info.id, now);
    const where = `${info.spec.kind} "${info.spec.name}"`;
    const workers = this.workers.all();
    const never = capacityProblem(
      where,
      info.spec,
      workers.map((w) => w.capacity),
    );
    const rooms = workers.map((worker) => {
      const used = { cpu: 0, memoryMiB: 0 };
      for (const container of worker.containers.values()) {
        used.cpu += container.cpu;
        used.memoryMiB += container.memoryMiB;
      }
      return { capacity: worker.capacity, used };
    });
    const line = never ? `${never} (its calls wait for one)` : waitingForCapacity(where, info.spec, rooms);
    this.log.info({ function: info.spec.name, pool: info.id }, line);
    this.hub.publishLogs([
      { ts: now, appId: info.appId, functionName: info.spec.name, containerId: "ct-server", stream: "system", line },
    ]);
  }

  /**
   * The environment variables of a function's secrets, in its order (later ones win): named secrets as
   * they are now in the app's environment, local ones as sealed with the app version.
   */
  private async secretsFor(info: FunctionInfo): Promise<Record<string, string>> {
    const refs = info.spec.secrets ?? [];
    if (refs.length === 0) return {};
    if (!this.secrets) throw new Error("this server has no secret store");
    const names = refs.flatMap((ref) => ("name" in ref ? [ref.name] : []));
    const named = names.length > 0 ? await this.secrets.store.getMany(info.env, names, info.workspace) : new Map();
    const local = refs.some((ref) => "local" in ref)
      ? await readLocalSecrets(this.store, this.secrets.store.box, info.appId, info.version)
      : {};
    const out: Record<string, string> = {};
    for (const ref of refs) {
      const values = "name" in ref ? named.get(ref.name) : local[ref.local];
      if (!values) {
        throw new Error(
          "name" in ref
            ? `the secret "${ref.name}" is not in environment "${info.env}" any more: create it again (skiff secret create ${ref.name} KEY=value --env ${info.env})`
            : "the app version's local secret values are missing: deploy it again",
        );
      }
      Object.assign(out, values);
    }
    return out;
  }

  /**
   * The secrets building `image` needs, from `scope`: the login of the registry its base comes from, and
   * the values of the secrets its steps run with. Empty for an image that names none.
   */
  async imageSecrets(scope: Scope, image: ImageSpec): Promise<ImageSecrets> {
    const registry = registrySecretOf(image);
    const steps = buildSecretsOf(image);
    const names = [...new Set([...(registry ? [registry] : []), ...steps])];
    if (names.length === 0) return {};
    if (!this.secrets) throw new ApiError("UNAVAILABLE", "this server has no secret store");
    const found = await this.secrets.store.getMany(scope.env, names, scope.workspace);
    const out: ImageSecrets = {};
    if (registry) {
      const values = found.get(registry) ?? {};
      const missing = REGISTRY_LOGIN_KEYS.filter((key) => !values[key]);
      if (missing.length > 0) throw new ApiError("BAD_REQUEST", registryLoginMissing(registry, scope.env, missing));
      out.registryAuth = { username: values.REGISTRY_USERNAME!, password: values.REGISTRY_PASSWORD! };
    }
    const absent = steps.find((name) => !found.has(name));
    if (absent) throw new ApiError("BAD_REQUEST", buildSecretMissing(absent, scope.env));
    if (steps.length > 0) out.buildSecrets = Object.fromEntries(steps.map((name) => [name, found.get(name)!]));
    return out;
  }

  /** Starts a container of a pool; false if its secrets cannot be resolved (its waiting inputs then fail). */
  private async startContainer(worker: WorkerConn, info: FunctionInfo): Promise<boolean> {
    let secrets: Record<string, string>;
    let imageSecrets: ImageSecrets;
    try {
      secrets = await this.secretsFor(info);
      imageSecrets = await this.imageSecrets(info, info.spec.image);
    } catch (error) {
      this.cannotStart.set(info.id, Date.now());
      await this.failFunction(info.id, `${info.spec.name} cannot start: ${(error as Error).message}`, undefined);
      return false;
    }
    const containerId = `ct-${randomUUID().slice(0, 13)}`;
    this.starting.set(containerId, { functionId: info.id, at: Date.now() });
    worker.containers.set(containerId, {
      id: containerId,
      functionId: info.id,
      cpu: info.spec.cpu,
      memoryMiB: info.spec.memoryMiB,
      state: "starting",
      version: info.version,
      stopping: false,
    });
    const [token, functionIds] = await Promise.all([
      this.store.addContainer({
        id: containerId,
        workerId: worker.id,
        functionId: info.id,
        version: info.version,
        workspace: info.workspace,
        appId: info.appId,
        env: info.env,
      }),
      this.store.functionIds(info.appId),
    ]);
    worker.send({
      t: "start",
      containerId,
      appId: info.appId,
      appName: info.appName,
      functionId: info.id,
      bundleHash: info.bundleHash,
      spec: info.spec,
      env: runnerEnvironment({ SKIFF_PARAMS: info.params }),
      secrets,
      ...imageSecrets,
      appEnv: info.env,
      token,
      functionIds,
    });
    return true;
  }
}

/** What a step's secret that is not in the environment is refused with (at deploy, and at build). */
export function buildSecretMissing(name: string, env: string): string {
  return `an image step runs with the secret "${name}", which is not in environment "${env}": create it with \`skiff secret create ${name} KEY=value --env ${env}\``;
}

/** What a registry secret without its login keys is refused with (at deploy, and when the image is pulled). */
export function registryLoginMissing(name: string, env: string, missing: readonly string[]): string {
  return `the registry secret "${name}" in environment "${env}" needs ${REGISTRY_LOGIN_KEYS.join(" and ")} (missing: ${missing.join(", ")}): \`skiff secret create ${name} REGISTRY_USERNAME=… REGISTRY_PASSWORD=… --force --env ${env}\``;
}

function missingFunction(functionId: string): ApiError {
  return new ApiError("NOT_FOUND", `no function ${functionId}: was its app stopped? run or deploy it again`);
}

/** Whether a container counts for its pool: of the current version and not stopping. */
function isCurrent(container: ContainerInfo, info: FunctionInfo): boolean {
  return !container.stopping && container.version >= info.version;
}

/** The containers a pool keeps with no work: parameter sets of a class are made on demand, so only its default pool. */
function minContainersOf(info: FunctionInfo): number {
  return info.params === undefined ? info.spec.minContainers : 0;
}

/** Why a function takes no calls: its app stopped, or its app's current version left it out. */
function stoppedReason(app: { state: string; version: number }, fn: { version: number }): string | undefined {
  if (app.state !== "running") return "is stopped: run or deploy it again";
  if (fn.version !== app.version) return `was removed in version ${app.version} of its app`;
  return undefined;
}

/**
 * A class pool's parameter values from its pool id (base64url JSON, see the SDK's poolId), checked against
 * the class's declared parameters; returned as JSON for the runner.
 */
function classParams(spec: FunctionSpec, encoded: string): string {
  const declared = new Map((spec.cls?.parameters ?? []).map((p) => [p.name, p.type] as const));
  let values: Record<string, unknown>;
  try {
    values = decodePoolPart(encoded) as Record<string, unknown>;
  } catch {
    throw new ApiError("BAD_REQUEST", `the parameters of ${spec.name} in its pool id are not valid`);
  }
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ApiError("BAD_REQUEST", `the parameters of ${spec.name} must be an object`);
  }
  for (const [name, value] of Object.entries(values)) {
    const type = declared.get(name);
    if (!type) {
      const names = [...declared.keys()].join(", ") || "none";
      throw new ApiError("BAD_REQUEST", `${spec.name} has no parameter "${name}" (its parameters: ${names})`);
    }
    if (typeof value !== type) {
      throw new ApiError("BAD_REQUEST", `${spec.name}: parameter "${name}" must be a ${type}, not ${typeof value}`);
    }
  }
  return JSON.stringify(values);
}

function newInput(id: string, callId: string, idx: number, functionId: string, args: Payload): QueuedInput {
  return {
    id,
    callId,
    idx,
    functionId,
    args,
    attempt: 0,
    userFailures: 0,
    infraFailures: 0,
    state: "pending",
    ticket: 0,
    until: 0,
    owner: undefined,
    dispatchedAt: 0,
  };
}

/** The delay before retry number `failures + 1`. */
function backoffMs(policy: RetryPolicy, failures: number): number {
  return Math.min(policy.initialDelayMs * policy.backoffCoefficient ** failures, policy.maxDelayMs);
}
