import { randomUUID } from "node:crypto";
import { type ClientMessage, encodeMessage, failurePayload, type Payload, webPath } from "@skiff/protocol";
import { INPUT_ID_BLOCK } from "@skiff/store";
import { ApiError } from "../../errors.js";
import { type Subscriber, toResult } from "../hub.js";
import type { QueuedInput } from "../queue.js";
import type { Caller, CallState, EngineState, FunctionInfo } from "../state.js";
import type { AttemptSystem } from "./attempts.js";
import { type PoolSystem, reaches } from "./pools.js";

/** A client's submit of one chunk of a call's inputs. */
export type Submit = Extract<ClientMessage, { t: "submit" }>;

/** Calls whose inputs all finished are forgotten (resends then check the store) after this long. */
const CALL_MEMORY_MS = 10 * 60_000;
/**
 * How long a generator call waits for a caller that went away (the SDK reconnects within a minute) before
 * it is cancelled: its generator would otherwise wait for credit until its timeout.
 */
export const CALLER_RETURN_MS = 60_000;

/**
 * Calls: intake (a chunk of inputs gets ids from a reserved block, is queued and written behind),
 * subscriptions to their results, and cancellation.
 */
export class CallSystem {
  private ids = { next: 0, end: 0 };
  private readonly callerTimers = new Set<NodeJS.Timeout>();
  private nextBlock: Promise<number> | undefined;

  constructor(
    private readonly state: EngineState,
    private readonly deps: { pools: PoolSystem; attempts: AttemptSystem; requestAutoscale: () => void },
  ) {}

  /** Queues a chunk of a call's inputs and hands them to waiting containers; resolves once durable. */
  async submit(call: Submit, subscriber: Subscriber | undefined, caller: Caller): Promise<void> {
    const { pools } = this.deps;
    const { hub, calls, persister } = this.state;
    const fn = await pools.functionIn(caller, call.functionId);
    if (fn.stopped) throw new ApiError("CONFLICT", `${fn.appName}.${fn.spec.name} ${fn.stopped}`);
    if (fn.spec.web) throw await this.notCallable(fn, fn.spec.web.label);
    // A class's methods are checked by its runner, which knows which of them are generators.
    if (fn.spec.kind === "function" && (fn.spec.generator === true) !== (call.gen === true)) {
      throw new ApiError("BAD_REQUEST", generatorMismatch(`${fn.appName}.${fn.spec.name}`, fn.spec.generator === true));
    }
    if (call.gen && call.total !== 1) {
      throw new ApiError("BAD_REQUEST", "a generator's call has one input: .map over a generator is not supported");
    }
    pools.checkCapacity([fn.spec]);
    const { inputs } = call;
    if (inputs.length === 0) return;
    const firstIdx = inputs[0]!.idx;
    if (inputs.length > INPUT_ID_BLOCK || inputs.some((input, i) => input.idx !== firstIdx + i))
      throw new ApiError("BAD_REQUEST", `submit at most ${INPUT_ID_BLOCK} inputs at once, with consecutive indices`);
    if (subscriber) hub.subscribeCall(call.callId, subscriber);
    if (calls.get(call.callId)?.chunks.has(firstIdx)) return persister.flushed(); // a resend we have
    // Marked before the first await, so that a resend racing this submit is recognized.
    const state = this.callState(call.callId, fn.id);
    state.chunks.add(firstIdx);
    const firstId = await this.takeIds(inputs.length).catch((error: unknown) => {
      state.chunks.delete(firstIdx);
      throw error;
    });
    const chunk = { callId: call.callId, functionId: fn.id, firstIdx, firstId, args: inputs.map((i) => i.args) };
    const queued = inputs.map((input, i) => newInput(String(firstId + i), call.callId, input.idx, fn.id, input.args));
    if (call.gen) for (const input of queued) input.gen = true;
    if (call.resent) {
      // A chunk this server does not hold in memory may be in the store from before a restart (and may
      // have run already): write first, queue only if new.
      if (!(await persister.chunk(chunk))) return;
      this.enqueue(state, queued);
      return;
    }
    this.enqueue(state, queued);
    await persister.chunk(chunk);
  }

  /** The refusal of a call to a web function: it answers HTTP, at its gateway path. */
  private async notCallable(fn: FunctionInfo, label: string): Promise<ApiError> {
    const workspace = await this.state.store.tokens.getWorkspace(fn.workspace);
    const path = webPath({ workspaceName: workspace?.name ?? "", env: fn.env, app: fn.appName, label });
    return new ApiError(
      "BAD_REQUEST",
      `${fn.appName}.${fn.spec.name} is a web function: it takes no calls; call it over HTTP at ${path} on the server`,
    );
  }

  /** A scheduled run: one input with no arguments. */
  async submitScheduled(functionId: string): Promise<string> {
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
      { workspace: (await this.deps.pools.functionInfo(functionId)).workspace },
    );
    return callId;
  }

  private enqueue(state: CallState, inputs: QueuedInput[]): void {
    const { queue, dispatcher } = this.state;
    state.unfinished += inputs.length;
    queue.add(inputs);
    dispatcher.serve(state.functionId);
    if (queue.load(state.functionId).pending > 0) this.deps.requestAutoscale();
  }

  /** `count` consecutive input ids from the current block, reserving the next block ahead of need. */
  private async takeIds(count: number): Promise<number> {
    const { store } = this.state;
    if (this.ids.next + count > this.ids.end) {
      const first = await (this.nextBlock ?? store.calls.reserveInputIds());
      this.nextBlock = undefined;
      if (this.ids.next + count > this.ids.end) this.ids = { next: first, end: first + INPUT_ID_BLOCK };
    }
    const first = this.ids.next;
    this.ids.next += count;
    if (!this.nextBlock && this.ids.end - this.ids.next < INPUT_ID_BLOCK / 2) {
      this.nextBlock = store.calls.reserveInputIds();
      this.nextBlock.catch(() => {
        this.nextBlock = undefined;
      });
    }
    return first;
  }

  /** What memory keeps of a call, made on its first chunk (or its reload after a restart). */
  callState(callId: string, functionId: string): CallState {
    let state = this.state.calls.get(callId);
    if (!state) {
      state = { functionId, chunks: new Set(), unfinished: 0, touchedAt: Date.now() };
      this.state.calls.set(callId, state);
    }
    state.touchedAt = Date.now();
    return state;
  }

  /** Whether a call still has inputs to run (calls are remembered a while after they finish). */
  unfinished(callId: string): boolean {
    return (this.state.calls.get(callId)?.unfinished ?? 0) > 0;
  }

  /** Subscribes, then replays what already finished (the client ignores duplicates). */
  async subscribe(caller: Caller, callId: string, fromIdx: number, subscriber: Subscriber): Promise<void> {
    await this.checkCall(caller, callId);
    this.state.hub.subscribeCall(callId, subscriber);
    await this.state.persister.flushed();
    const finished = await this.state.store.calls.results(callId, fromIdx);
    if (finished.length > 0) subscriber.pushResults(callId, finished.map(toResult));
  }

  /** Tells the container running a generator call how many of its values the caller took (backpressure). */
  async generatorTaken(caller: Caller, callId: string, consumed: number): Promise<void> {
    await this.checkCall(caller, callId);
    const { queue, workers } = this.state;
    for (const input of queue.ofCall(callId)) {
      if (!input.gen || input.state !== "running" || !input.owner) continue;
      workers
        .ownerOf(input.owner)
        ?.send({ t: "credit", credits: [{ inputId: input.id, attempt: input.attempt, consumed }] });
    }
  }

  /**
   * Calls left without a subscriber (their caller's connection closed): a generator call is cancelled
   * unless someone subscribes again within CALLER_RETURN_MS. Other calls run on (`.spawn` needs no caller).
   */
  callersGone(callIds: string[]): void {
    const { queue, hub } = this.state;
    for (const callId of callIds) {
      if (!queue.ofCall(callId).some((input) => input.gen)) continue;
      const timer = setTimeout(() => {
        this.callerTimers.delete(timer);
        if (hub.hasSubscribers(callId)) return;
        const message = `the generator's caller went away and did not come back within ${CALLER_RETURN_MS / 1000} s`;
        void this.deps.attempts.failAll(queue.ofCall(callId), "CANCELLED", failurePayload(message));
      }, CALLER_RETURN_MS);
      timer.unref();
      this.callerTimers.add(timer);
    }
  }

  /** Stops the timers of callers that went away. */
  stop(): void {
    for (const timer of this.callerTimers) clearTimeout(timer);
    this.callerTimers.clear();
  }

  /** Fails a call's unfinished inputs as CANCELLED, killing those that run. */
  async cancel(caller: Caller, callId: string): Promise<void> {
    await this.checkCall(caller, callId);
    const inputs = this.state.queue.ofCall(callId);
    await this.deps.attempts.failAll(inputs, "CANCELLED", failurePayload("the call was cancelled"));
  }

  /** Forgets finished calls past CALL_MEMORY_MS. */
  forgetOldCalls(now: number): void {
    for (const [callId, state] of this.state.calls) {
      if (state.unfinished === 0 && state.touchedAt < now - CALL_MEMORY_MS) this.state.calls.delete(callId);
    }
  }

  /**
   * That a call exists and is of a function the caller reaches, else NOT_FOUND (the same for both). A
   * call not in memory is one whose first chunk was written before (memory holds a call from its first
   * submit).
   */
  private async checkCall(caller: Caller, callId: string): Promise<void> {
    const functionId =
      this.state.calls.get(callId)?.functionId ?? (await this.state.store.calls.get(callId))?.functionId;
    const info = functionId ? await this.deps.pools.functionInfo(functionId).catch(() => undefined) : undefined;
    if (!info || !reaches(caller, info)) throw new ApiError("NOT_FOUND", `no call ${callId}: results are kept 7 days`);
  }
}

/** Why a call was refused: a generator called without `.remoteGen`, or a plain function called with it. */
export function generatorMismatch(name: string, generator: boolean): string {
  return generator
    ? `${name} is an async generator function: iterate its values with \`for await (const value of fn.remoteGen(...args))\`; .remote, .spawn, .map, .starmap and .forEach are for plain functions`
    : `${name} is not an async generator function: call it with .remote(...args); .remoteGen is for \`async function*\` handlers`;
}

/** A new input as the queue holds it: pending, never attempted. */
export function newInput(id: string, callId: string, idx: number, functionId: string, args: Payload): QueuedInput {
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
