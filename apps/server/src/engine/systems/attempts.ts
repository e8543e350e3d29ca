import {
  type AttemptRef,
  decodeMessage,
  type ErrorCode,
  failurePayload,
  type GeneratorItem,
  groupBy,
  HEARTBEAT_MS,
  INFRA_RETRIES,
  LEASE_MS,
  type OutputStatus,
  type Payload,
  type RetryPolicy,
  type WorkerItem,
  type WorkerMessage,
  type WorkerOutput,
} from "@skiff/protocol";
import type { FinishedInput } from "@skiff/store";
import type { QueuedInput } from "../queue.js";
import type { EngineState } from "../state.js";
import type { WorkerConn } from "../workers.js";
import type { PoolSystem } from "./pools.js";

/** How often expired leases and due retries are looked for. */
export const TICK_MS = 1000;

type Claim = Extract<WorkerMessage, { t: "claim" }>;

/**
 * The attempts at inputs: handing inputs to a container's claim, their leases, their outcomes (the first
 * success wins, user failures retried with backoff within `retries`, platform losses apart within
 * INFRA_RETRIES) and failing inputs outright.
 */
export class AttemptSystem {
  /** When `tick` last ran. */
  private lastTick = Date.now();
  /** Generator values still being handled (a blob's grant): outputs wait for them. */
  private itemsInFlight: Promise<void> | undefined;

  constructor(
    private readonly state: EngineState,
    private readonly deps: { pools: PoolSystem; requestAutoscale: () => void },
  ) {}

  /** Answers a container's claim with inputs as they come; `shutdown` if its pool wants it no more. */
  async claim(worker: WorkerConn, message: Claim): Promise<void> {
    const container = worker.containers.get(message.containerId);
    const info = container ? await this.deps.pools.functionInfo(container.functionId) : undefined;
    if (!container || !info || info.stopped || container.stopping || this.deps.pools.replaced(container, info)) {
      worker.send({ t: "inputs", rid: message.rid, inputs: [], shutdown: true });
      return;
    }
    const timeoutMs = info.spec.timeoutMs;
    this.state.dispatcher.claim({
      functionId: container.functionId,
      containerId: container.id,
      max: message.max,
      respond: (inputs) =>
        worker.send({
          t: "inputs",
          rid: message.rid,
          inputs: inputs.map((input) =>
            input.gen
              ? { ...attemptOf(input), args: input.args, timeoutMs, gen: true }
              : { ...attemptOf(input), args: input.args, timeoutMs },
          ),
          shutdown: false,
        }),
    });
  }

  /** Attempts a container gave back unrun: back to the queue, no failure counted. */
  returned(refs: AttemptRef[]): void {
    const now = Date.now();
    for (const input of this.running(refs)) this.state.queue.requeue(input, now, now);
    this.state.dispatcher.serveAll();
    this.deps.requestAutoscale();
  }

  /**
   * Values generators yielded: each goes to its call's subscribers at once, in order, if its attempt still
   * holds the input; none is stored. A value out of order (one before it never came) is dropped, and the
   * count at the generator's end then fails the call instead of ending it short.
   */
  items(items: WorkerItem[]): Promise<void> | undefined {
    const needsGrant = items.some((item) => "blob" in item.data);
    if (!this.itemsInFlight && !needsGrant) {
      this.publishItems(items);
      return undefined;
    }
    // In arrival order, and the outputs after them (see outputs): a blob's grant must not let a later
    // message overtake this one.
    const previous = this.itemsInFlight;
    const done = (async () => {
      await previous;
      if (needsGrant) await this.grantOutputBlobs(items);
      this.publishItems(items);
    })();
    const settled: Promise<void> = done
      .catch((error: unknown) => this.state.log.error({ err: error }, "generator values failed"))
      .finally(() => {
        if (this.itemsInFlight === settled) this.itemsInFlight = undefined;
      });
    this.itemsInFlight = settled;
    return settled;
  }

  private publishItems(items: WorkerItem[]): void {
    const { queue, hub } = this.state;
    const orphans = new Set<QueuedInput>();
    for (const [callId, ofCall] of groupBy(items, (item) => queue.get(item.inputId)?.callId ?? "")) {
      const out: GeneratorItem[] = [];
      for (const item of ofCall) {
        const input = queue.get(item.inputId);
        if (input?.state !== "running" || input.attempt !== item.attempt) continue;
        // Values of an input this server does not know as a generator's: it was reloaded after a restart,
        // and its caller cannot get every value any more.
        if (!input.gen) {
          orphans.add(input);
          continue;
        }
        if (item.index !== (input.yielded ?? 0)) continue;
        input.yielded = item.index + 1;
        out.push({ index: item.index, data: item.data });
      }
      if (out.length > 0) hub.publishItems(callId, out);
    }
    if (orphans.size > 0) {
      const message =
        "the server restarted while the generator ran, and values it yielded meanwhile could not reach the caller: call .remoteGen again";
      void this.failAll([...orphans], "UNAVAILABLE", failurePayload(message));
    }
  }

  /** Extends the leases of attempts a worker says still run. */
  heartbeat(refs: AttemptRef[]): void {
    const until = Date.now() + LEASE_MS;
    for (const input of this.running(refs)) this.state.queue.extend(input, until);
  }

  /** The inputs of these refs that still run under that attempt. */
  running(refs: AttemptRef[]): QueuedInput[] {
    const out = new Set<QueuedInput>();
    for (const ref of refs) {
      const input = this.state.queue.get(ref.inputId);
      if (input?.state === "running" && input.attempt === ref.attempt) out.add(input);
    }
    return [...out];
  }

  /**
   * Outputs of a worker. Successes reach their callers at once, before the durable write: if this
   * server dies first, the input runs again (at least once) and the caller already has its result. The
   * worker hears `outputs-recorded` once they are durable.
   */
  async outputs(worker: WorkerConn, seq: number, outputs: WorkerOutput[]): Promise<void> {
    // A generator's values all reach its caller before its result.
    if (this.itemsInFlight) await this.itemsInFlight;
    await this.grantOutputBlobs(outputs);
    const { queue, timings, functions, hub, persister } = this.state;
    const now = Date.now();
    const finished: FinishedInput[] = [];
    const lost: QueuedInput[] = [];
    let requeued = false;
    for (const output of outputs) {
      const input = queue.get(output.inputId);
      if (!input) continue; // finished already: the first success wins
      const current = input.state === "running" && input.attempt === output.attempt;
      if (current) timings.noteRun(input.functionId, now - input.dispatchedAt);
      if (output.status === "success" && !output.infra && input.gen && !this.allDelivered(input, output)) {
        const lostValues = `the generator's values did not all reach the server (it yielded ${countOf(output.data)}, ${input.yielded ?? 0} arrived): call it again`;
        finished.push(this.finish(input, "failure", "UNAVAILABLE", { inline: failurePayload(lostValues) }));
      } else if (output.status === "success" && !output.infra) {
        finished.push(this.finish(input, "success", undefined, output.data));
      } else if (!current) {
        // A failure counts only for the attempt that holds the input; older attempts' reports change nothing.
      } else if (output.infra) {
        lost.push(input);
      } else {
        const policy = functions.get(input.functionId)?.spec.retries;
        // A generator that yielded is not run again: its caller has values a new run would repeat.
        if (policy && output.retryable && input.userFailures < policy.maxRetries && !input.yielded) {
          const runAfter = now + backoffMs(policy, input.userFailures);
          input.userFailures += 1;
          queue.requeue(input, runAfter, now);
          this.saveProgress(input, runAfter);
          requeued = true;
        } else {
          input.userFailures += 1;
          finished.push(this.finish(input, "failure", output.code ?? "USER_ERROR", output.data));
        }
      }
    }
    hub.publishFinished(finished);
    this.loseAll(lost, "the container was lost");
    if (requeued) this.deps.requestAutoscale();
    // Results, retry counts and requeues of these outputs are all queued by now.
    void persister.flushed().then(() => worker.send({ t: "outputs-recorded", seq }));
  }

  /** Results too large to inline are blobs the worker put: their callers' workspaces may read them. */
  private async grantOutputBlobs(outputs: { inputId: string; data: Payload }[]): Promise<void> {
    const byWorkspace = new Map<string, string[]>();
    for (const output of outputs) {
      if (!("blob" in output.data)) continue;
      const input = this.state.queue.get(output.inputId);
      const workspace = input && this.state.functions.get(input.functionId)?.workspace;
      if (!workspace) continue;
      const hashes = byWorkspace.get(workspace) ?? [];
      byWorkspace.set(workspace, hashes);
      hashes.push(output.data.blob);
    }
    for (const [workspace, hashes] of byWorkspace) await this.state.store.blobs.grant(workspace, hashes);
  }

  /** Fails these inputs with `code`, killing the attempts that run; resolves once recorded. */
  async failAll(inputs: QueuedInput[], code: ErrorCode, data: Uint8Array): Promise<void> {
    const { workers, hub, persister } = this.state;
    const running = inputs.filter((input) => input.state === "running");
    for (const [worker, attempts] of groupBy(running, (input) => workers.ownerOf(input.owner!))) {
      worker?.send({ t: "cancel", inputs: attempts.map(attemptOf) });
    }
    hub.publishFinished(inputs.map((input) => this.finish(input, "failure", code, { inline: data })));
    await persister.flushed();
  }

  /** Fails every waiting input of a function whose containers cannot start: retrying would loop. */
  async failFunction(
    functionId: string,
    message: string,
    error: Uint8Array | undefined,
    code: ErrorCode = "INIT_FAILED",
  ): Promise<void> {
    const waiting = this.state.queue.ofFunction(functionId).filter((input) => input.state !== "running");
    await this.failAll(waiting, code, error ?? failurePayload(message));
    this.state.log.warn({ functionId, failed: waiting.length, message }, "function failed to start");
  }

  /** Takes an input out of the queue with its final result, and writes the result behind (see flushed). */
  private finish(input: QueuedInput, status: OutputStatus, code: ErrorCode | undefined, data: Payload): FinishedInput {
    const { queue, persister, calls } = this.state;
    queue.remove(input);
    void persister.result({
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
    const call = calls.get(input.callId);
    if (call && --call.unfinished === 0) void persister.finishedCall(input.callId);
    return { inputId: input.id, callId: input.callId, idx: input.idx, status, code, data };
  }

  /**
   * Puts back an input whose attempt the platform lost (container or worker gone, lease expired), outside
   * the user's retry budget; past INFRA_RETRIES such losses it fails with `message`.
   */
  private lose(input: QueuedInput, message: string): FinishedInput | undefined {
    input.infraFailures += 1;
    if (input.yielded) {
      // Running it again would send its caller the values it already has.
      const data = failurePayload(
        `${message} after the generator yielded ${input.yielded} value(s); a generator is not run again once it has yielded: call it again`,
      );
      return this.finish(input, "failure", "CONTAINER_CRASHED", { inline: data });
    }
    if (input.infraFailures > INFRA_RETRIES) {
      const data = failurePayload(`${message}; gave up after ${INFRA_RETRIES} retries`);
      return this.finish(input, "failure", "CONTAINER_CRASHED", { inline: data });
    }
    const now = Date.now();
    this.state.queue.requeue(input, now, now);
    this.saveProgress(input, now);
    return undefined;
  }

  private saveProgress(input: QueuedInput, runAfterMs: number): void {
    void this.state.persister.progress({
      inputId: input.id,
      attempt: input.attempt,
      userFailures: input.userFailures,
      infraFailures: input.infraFailures,
      runAfterMs,
    });
  }

  /** Loses every input in `inputs`, then tells callers and containers. */
  loseAll(inputs: QueuedInput[], message: string): void {
    if (inputs.length === 0) return;
    this.state.hub.publishFinished(inputs.flatMap((input) => this.lose(input, message) ?? []));
    this.state.dispatcher.serveAll();
    this.deps.requestAutoscale();
  }

  /** Whether a generator's caller got every value its output counts. */
  private allDelivered(input: QueuedInput, output: WorkerOutput): boolean {
    return countOf(output.data) === (input.yielded ?? 0);
  }

  /** Requeues expired leases and retries whose backoff ended. */
  tick(): void {
    const { queue, log, dispatcher } = this.state;
    const now = Date.now();
    // Late by more than a heartbeat, this process could not run (a slow disk under the embedded store, a
    // long pause): the heartbeats that came meanwhile are read after this timer. Expire nothing before then.
    const late = now - this.lastTick > TICK_MS + HEARTBEAT_MS;
    this.lastTick = now;
    const expired = late ? [] : queue.expired(now);
    if (expired.length > 0) log.warn({ inputs: expired.length }, "requeueing inputs whose lease expired");
    this.loseAll(expired, "the input's worker stopped answering");
    if (queue.promoteDue(now) > 0) {
      dispatcher.serveAll();
      this.deps.requestAutoscale();
    }
  }
}

/** A generator's output: how many values it yielded (CBOR), or -1 if it is not a count. */
function countOf(data: Payload): number {
  if (!("inline" in data)) return -1;
  try {
    const count = decodeMessage(data.inline);
    return typeof count === "number" ? count : -1;
  } catch {
    return -1;
  }
}

/** The attempt an input runs now. */
function attemptOf(input: QueuedInput): AttemptRef {
  return { inputId: input.id, attempt: input.attempt };
}

/** The delay before retry number `failures + 1`. */
function backoffMs(policy: RetryPolicy, failures: number): number {
  return Math.min(policy.initialDelayMs * policy.backoffCoefficient ** failures, policy.maxDelayMs);
}
