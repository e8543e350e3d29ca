import { randomUUID } from "node:crypto";
import {
  encodeMessage,
  type FunctionSpec,
  groupBy,
  INFRA_RETRIES,
  LEASE_MS,
  type Payload,
  RESULT_TTL_MS,
  type WorkerMessage,
} from "@skiff/protocol";
import type { FinishedInput, InputRef, Store } from "@skiff/store";
import type { Logger } from "pino";
import { ApiError } from "../errors.js";
import { Dispatcher, type Waiter } from "./dispatcher.js";
import { Hub, type Subscriber } from "./hub.js";
import { FunctionTimings } from "./timings.js";
import { type WorkerConn, WorkerRegistry } from "./workers.js";

interface FunctionInfo {
  id: string;
  appId: string;
  appName: string;
  bundleHash: string;
  spec: FunctionSpec;
  stopped: boolean;
}

/** A platform failure as a payload: the SDK turns it into a CallError with this message. */
export function failurePayload(message: string): Uint8Array {
  return encodeMessage({ message });
}

export interface ControlPlaneOptions {
  store: Store;
  log: Logger;
  /** Ephemeral apps whose client has been silent this long are stopped. */
  abandonAfterMs?: number;
}

/**
 * The server's engine: accepts calls, hands inputs to containers, records outputs, starts containers
 * where there is backlog, and requeues what was lost. The store is the source of truth; memory holds
 * only what can be rebuilt (connections, parked claims, caches).
 */
export class ControlPlane {
  readonly hub = new Hub();
  readonly workers = new WorkerRegistry();
  readonly dispatcher: Dispatcher;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly functions = new Map<string, FunctionInfo>();
  private readonly timers: NodeJS.Timeout[] = [];
  /** Inputs handed to containers by this replica, to push a success to its caller before it is recorded. */
  private readonly dispatched = new Map<string, { callId: string; idx: number; functionId: string; at: number }>();
  private readonly timings = new FunctionTimings();
  /** Containers asked to start and not yet running, with when and for which function. */
  private readonly starting = new Map<string, { functionId: string; at: number }>();
  private scaling: Promise<void> | undefined;
  private scaleAgain = false;
  private readonly abandonAfterMs: number;

  constructor(options: ControlPlaneOptions) {
    this.store = options.store;
    this.log = options.log;
    this.dispatcher = new Dispatcher(options.store);
    this.abandonAfterMs = options.abandonAfterMs ?? 60_000;
  }

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) => {
      const timer = setInterval(
        () => fn().catch((error) => this.log.error({ err: error }, "periodic task failed")),
        ms,
      );
      timer.unref();
      this.timers.push(timer);
    };
    every(250, () => this.autoscale());
    every(1000, () => this.reap());
    every(1000, async () => this.dispatcher.wakeAll());
    every(5000, () => this.stopAbandonedApps());
    every(3_600_000, () => this.store.deleteFinished(RESULT_TTL_MS));
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
  }

  async functionInfo(functionId: string): Promise<FunctionInfo> {
    const cached = this.functions.get(functionId);
    if (cached) return cached;
    const row = await this.store.getFunction(functionId);
    if (!row) throw new ApiError("NOT_FOUND", `no function ${functionId}: was its app stopped? run or deploy it again`);
    const info: FunctionInfo = {
      id: row.id,
      appId: row.appId,
      appName: row.app.name,
      bundleHash: row.app.bundleHash,
      spec: row.spec,
      stopped: row.app.state !== "running",
    };
    this.functions.set(functionId, info);
    return info;
  }

  // ---- calls ----

  async submit(
    call: { functionId: string; callId: string; total: number; inputs: { idx: number; args: Payload }[] },
    subscriber: Subscriber | undefined,
  ): Promise<void> {
    const fn = await this.functionInfo(call.functionId);
    if (fn.stopped) throw new ApiError("CONFLICT", `app ${fn.appName} is stopped: run or deploy it again`);
    if (subscriber) this.hub.subscribeCall(call.callId, subscriber);
    // Containers already waiting get their inputs in the submit's own write: no claim round trip.
    const waiters = this.dispatcher.take(call.functionId, call.inputs.length);
    const owners: string[] = [];
    for (const waiter of waiters) for (let i = 0; i < waiter.max; i++) owners.push(waiter.containerId);
    const inputs = call.inputs.map((input, i) => ({ ...input, owner: owners[i] }));
    let leased: Awaited<ReturnType<Store["submit"]>>["leased"] = [];
    try {
      ({ leased } = await this.store.submit({ ...call, inputs, leaseMs: LEASE_MS }));
    } finally {
      this.answerTaken(call, waiters, leased);
    }
    if (inputs.length > owners.length) {
      this.dispatcher.wake(call.functionId);
      this.requestAutoscale();
    }
  }

  private answerTaken(
    call: { functionId: string; callId: string; inputs: { idx: number; args: Payload }[] },
    waiters: Waiter[],
    leased: { inputId: string; attempt: number; idx: number; owner: string }[],
  ): void {
    const args = new Map(call.inputs.map((input) => [input.idx, input.args]));
    for (const waiter of waiters) {
      const mine = leased.filter((row) => row.owner === waiter.containerId);
      if (mine.length === 0) {
        this.dispatcher.park(call.functionId, waiter);
        continue;
      }
      waiter.respond(
        mine.map((row) => ({ ...row, callId: call.callId, args: args.get(row.idx)!, timeoutMs: waiter.timeoutMs })),
      );
    }
  }

  /** Subscribes, then replays what already finished (the client ignores duplicates). */
  async subscribe(callId: string, fromIdx: number, subscriber: Subscriber): Promise<void> {
    this.hub.subscribeCall(callId, subscriber);
    const finished = await this.store.results(callId, fromIdx);
    if (finished.length > 0) subscriber.pushResults(callId, finished.map(toResult));
    else if (!(await this.store.getCall(callId)))
      throw new ApiError("NOT_FOUND", `no call ${callId}: results are kept 7 days`);
  }

  async cancel(callId: string): Promise<void> {
    const { finished, running } = await this.store.cancelCall(callId);
    this.publish(finished);
    this.killAttempts(running);
  }

  async stopApp(appId: string): Promise<void> {
    const { finished } = await this.store.stopApp(appId);
    this.publish(finished);
    for (const info of this.functions.values()) if (info.appId === appId) info.stopped = true;
    for (const worker of this.workers.all()) {
      for (const container of worker.containers.values()) {
        if (this.functions.get(container.functionId)?.appId === appId) {
          this.dispatcher.release(container.id);
          worker.send({ t: "stop", containerId: container.id, reason: "the app was stopped" });
        }
      }
    }
  }

  /** Tells callers about finished inputs, and forgets them as dispatched. */
  private publish(finished: FinishedInput[]): void {
    for (const input of finished) this.dispatched.delete(input.inputId);
    this.hub.publishFinished(finished);
  }

  private killAttempts(running: (InputRef & { owner: string })[]): void {
    for (const [worker, attempts] of groupBy(running, (attempt) => this.workers.ownerOf(attempt.owner))) {
      worker?.send({ t: "cancel", inputs: attempts.map(({ inputId, attempt }) => ({ inputId, attempt })) });
    }
  }

  // ---- workers ----

  async workerConnected(worker: WorkerConn, runtime: string, containers: string[], held: InputRef[]): Promise<void> {
    await this.store.upsertWorker({ id: worker.id, name: worker.name, runtime, capacity: worker.capacity });
    // Containers that survived a server restart or a reconnect: adopt those we know and still want.
    const live = await this.store.liveContainers();
    const known = new Map(live.map((c) => [c.id, c]));
    // Containers this worker had before it restarted are gone: requeue their inputs now, not at lease expiry.
    const gone = live.filter((c) => c.workerId === worker.id && !containers.includes(c.id)).map((c) => c.id);
    if (gone.length > 0) {
      await this.store.stopContainers(gone, "worker restarted");
      const requeued = await this.requeue({ owners: gone }, "the input's worker was lost");
      if (requeued > 0) {
        this.log.warn({ worker: worker.name, requeued }, "requeued inputs of containers lost in a worker restart");
      }
    }
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
      });
    }
    // Claims answered by a server that died before the answer reached the worker: nobody runs those.
    const holds = new Set(held.map((ref) => `${ref.inputId}/${ref.attempt}`));
    const orphans = (await this.store.leasedTo([...worker.containers.keys()])).filter(
      (ref) => !holds.has(`${ref.inputId}/${ref.attempt}`),
    );
    if (orphans.length > 0) await this.requeue({ inputs: orphans }, "the input's claim was lost");
    this.workers.add(worker);
    this.log.info({ worker: worker.name, adopted: worker.containers.size }, "worker connected");
    this.requestAutoscale();
  }

  async workerDisconnected(worker: WorkerConn): Promise<void> {
    if (this.workers.remove(worker.id) !== worker) return;
    for (const container of worker.containers.values()) this.dispatcher.release(container.id);
    // Leases of its inputs expire unless it comes back and heartbeats; the reaper requeues them then.
    this.log.warn({ worker: worker.name }, "worker disconnected");
  }

  async workerMessage(worker: WorkerConn, message: WorkerMessage): Promise<void> {
    switch (message.t) {
      case "claim": {
        const container = worker.containers.get(message.containerId);
        const info = container ? await this.functionInfo(container.functionId) : undefined;
        if (!container || !info || info.stopped) {
          worker.send({ t: "inputs", rid: message.rid, inputs: [], shutdown: true });
          return;
        }
        await this.dispatcher.claim({
          functionId: container.functionId,
          containerId: container.id,
          max: message.max,
          timeoutMs: info.spec.timeoutMs,
          respond: (inputs) => {
            const at = Date.now();
            for (const input of inputs) {
              this.dispatched.set(input.inputId, {
                callId: input.callId,
                idx: input.idx,
                functionId: container.functionId,
                at,
              });
            }
            worker.send({
              t: "inputs",
              rid: message.rid,
              inputs: inputs.map(({ inputId, attempt, args, timeoutMs }) => ({ inputId, attempt, args, timeoutMs })),
              shutdown: false,
            });
          },
        });
        return;
      }
      case "outputs": {
        // Successes reach their callers before the durable write: if this server dies before recording,
        // the input runs again (at least once) and the caller already has its result.
        const early = new Set<string>();
        const pushed = [];
        for (const output of message.outputs) {
          const call = this.dispatched.get(output.inputId);
          this.dispatched.delete(output.inputId);
          if (!call || output.infra) continue;
          this.timings.noteRun(call.functionId, Date.now() - call.at);
          if (output.status !== "success") continue;
          early.add(output.inputId);
          pushed.push({
            inputId: output.inputId,
            callId: call.callId,
            idx: call.idx,
            status: output.status,
            code: undefined,
            data: output.data,
          });
        }
        this.hub.publishFinished(pushed); // already taken out of `dispatched` above
        const finished = await this.store.recordOutputs(
          message.outputs.filter((o) => !o.infra),
          async (functionId) => (await this.functionInfo(functionId)).spec.retries,
        );
        const lost = message.outputs.filter((o) => o.infra);
        if (lost.length > 0) await this.requeue({ inputs: lost }, "the container was lost");
        worker.send({ t: "outputs-recorded", seq: message.seq });
        this.publish(finished.filter((input) => !early.has(input.inputId)));
        if (message.outputs.some((o) => o.status === "failure")) this.dispatcher.wakeAll();
        return;
      }
      case "unclaim":
        this.dispatcher.release(message.containerId);
        return;
      case "return":
        await this.store.returnInputs(message.inputs);
        for (const ref of message.inputs) this.dispatched.delete(ref.inputId);
        this.dispatcher.wakeAll();
        this.requestAutoscale();
        return;
      case "heartbeat":
        await this.store.heartbeat(message.inputs, LEASE_MS);
        return;
      case "logs":
        this.hub.publishLogs(message.lines);
        return;
      case "started": {
        const container = worker.containers.get(message.containerId);
        if (container) container.state = "running";
        const started = this.starting.get(message.containerId);
        this.starting.delete(message.containerId);
        if (started) this.timings.noteColdStart(started.functionId, Date.now() - started.at);
        await this.store.setContainerState(message.containerId, "running");
        return;
      }
      case "stopped": {
        const container = worker.containers.get(message.containerId);
        worker.containers.delete(message.containerId);
        this.starting.delete(message.containerId);
        this.dispatcher.release(message.containerId);
        await this.store.setContainerState(message.containerId, "stopped", message.reason);
        if (message.inFlight.length > 0) {
          await this.requeue(
            { inputs: message.inFlight },
            message.message ?? `the container stopped (${message.reason})`,
          );
        }
        if ((message.reason === "init-failed" || message.reason === "start-failed") && container) {
          await this.failFunction(
            container.functionId,
            message.message ?? "the container failed to start",
            message.error,
          );
        }
        this.requestAutoscale();
        return;
      }
      case "hello":
        return;
    }
  }

  /** Fails every waiting input of a function whose containers cannot start: retrying would loop. */
  private async failFunction(functionId: string, message: string, error: Uint8Array | undefined): Promise<void> {
    const { finished } = await this.store.failPending(functionId, "INIT_FAILED", error ?? failurePayload(message));
    this.publish(finished);
    this.log.warn({ functionId, failed: finished.length, message }, "function failed to start");
  }

  /**
   * Requeues attempts lost to the platform (container or worker gone, lease expired, claim lost), outside
   * the user's retry budget; past INFRA_RETRIES such losses the input fails with `message`. Returns how
   * many went back to the queue.
   */
  private async requeue(where: Parameters<Store["requeueLost"]>[0], message: string): Promise<number> {
    if ("inputs" in where) for (const ref of where.inputs) this.dispatched.delete(ref.inputId);
    const { requeued, finished } = await this.store.requeueLost(where, {
      maxInfra: INFRA_RETRIES,
      code: "CONTAINER_CRASHED",
      data: failurePayload(`${message}; gave up after ${INFRA_RETRIES} retries`),
    });
    this.publish(finished);
    if (requeued > 0) {
      this.dispatcher.wakeAll();
      this.requestAutoscale();
    }
    return requeued;
  }

  // ---- periodic work ----

  async reap(): Promise<void> {
    const requeued = await this.requeue({ expiredBefore: "now" }, "the input's worker stopped answering");
    if (requeued > 0) this.log.warn({ requeued }, "requeued inputs whose lease expired");
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

  /** desired = clamp(ceil((ready + running) / maxInputs) + buffer, min, max), per function with work. */
  private async autoscale(): Promise<void> {
    if (this.workers.all().length === 0) return;
    for (const backlog of await this.store.backlog()) {
      const info = await this.functionInfo(backlog.functionId).catch(() => undefined);
      if (!info || info.stopped) continue;
      const { spec } = info;
      const work = backlog.pending + backlog.running;
      if (work === 0) continue;
      const desired = Math.min(
        spec.maxContainers,
        Math.max(spec.minContainers, Math.ceil(work / spec.maxInputs) + spec.bufferContainers),
      );
      const live = this.workers.containersOf(info.id).length;
      for (let i = live; i < desired; i++) {
        // Beyond the minimum, a new container must beat the live ones to the end of the backlog.
        if (i >= spec.minContainers && !this.timings.worthAnotherContainer(info.id, work, i * spec.maxInputs)) break;
        const worker = this.workers.place({ cpu: spec.cpu, memoryMiB: spec.memoryMiB });
        if (!worker) {
          this.log.debug({ function: spec.name }, "no worker has room for another container");
          break;
        }
        await this.startContainer(worker, info);
      }
    }
  }

  private async startContainer(worker: WorkerConn, info: FunctionInfo): Promise<void> {
    const containerId = `ct-${randomUUID().slice(0, 13)}`;
    this.starting.set(containerId, { functionId: info.id, at: Date.now() });
    worker.containers.set(containerId, {
      id: containerId,
      functionId: info.id,
      cpu: info.spec.cpu,
      memoryMiB: info.spec.memoryMiB,
      state: "starting",
    });
    await this.store.addContainer({ id: containerId, workerId: worker.id, functionId: info.id });
    worker.send({
      t: "start",
      containerId,
      appId: info.appId,
      appName: info.appName,
      functionId: info.id,
      bundleHash: info.bundleHash,
      spec: info.spec,
      env: {},
    });
  }
}

function toResult(input: FinishedInput) {
  return { idx: input.idx, status: input.status, data: input.data, ...(input.code ? { code: input.code } : {}) };
}
