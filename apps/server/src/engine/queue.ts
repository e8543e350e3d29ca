import type { Payload } from "@skiff/protocol";
import { addToIndex, removeFromIndex } from "./set-index.js";

/** An unfinished input as the engine holds it. Finished inputs leave memory; the store keeps them. */
export interface QueuedInput {
  id: string;
  callId: string;
  idx: number;
  functionId: string;
  args: Payload;
  /** The latest attempt handed to a container (0 before the first). */
  attempt: number;
  userFailures: number;
  infraFailures: number;
  /** `held`: after a restart, until its worker is heard from; `gone`: finished, out of the queue. */
  state: "pending" | "delayed" | "running" | "held" | "gone";
  /** Bumped each time it is queued, so a list entry left from an earlier time in the queue is skipped. */
  ticket: number;
  /** For `delayed`: when the retry may run. For `running` and `held`: when the lease expires. */
  until: number;
  /** The container running it, while `running`. */
  owner: string | undefined;
  /** When the running attempt was handed out. */
  dispatchedAt: number;
  /** A generator's call (`.remoteGen`): its values stream to the caller as `items`. */
  gen?: boolean;
  /** For a generator: the values its caller was sent. Once there is one, it is never run again. */
  yielded?: number;
}

export interface FunctionLoad {
  /** Ready to run now. */
  pending: number;
  running: number;
  /** Waiting for a retry's backoff, or held after a restart until their workers are heard from. */
  waiting: number;
}

/**
 * A first-in first-out list that takes from the front in O(1). Entries of inputs that left the queue
 * since (taken elsewhere, cancelled, finished) are skipped when reached instead of searched for.
 */
class Fifo {
  private items: { input: QueuedInput; ticket: number }[] = [];
  private head = 0;

  push(input: QueuedInput): void {
    this.items.push({ input, ticket: input.ticket });
  }

  /** The next input still pending, taken out of the list. */
  shift(): QueuedInput | undefined {
    while (this.head < this.items.length) {
      const { input, ticket } = this.items[this.head++]!;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (input.state === "pending" && input.ticket === ticket) return input;
    }
    return undefined;
  }
}

class FunctionQueue {
  /** Inputs put back after a lost attempt: older than anything in `fresh`, so they go first. */
  readonly again = new Fifo();
  readonly fresh = new Fifo();
  readonly load: FunctionLoad = { pending: 0, running: 0, waiting: 0 };

  shift(): QueuedInput | undefined {
    return this.again.shift() ?? this.fresh.shift();
  }
}

/**
 * Every unfinished input, in memory: what is ready per function in submission order, what runs where
 * under which lease, and what waits for a retry. The control plane decides the transitions and persists
 * them; this class only keeps the state consistent and each transition O(1) per input.
 */
export class InputQueue {
  private readonly inputs = new Map<string, QueuedInput>();
  private readonly functions = new Map<string, FunctionQueue>();
  private readonly byCall = new Map<string, Set<QueuedInput>>();
  private readonly byOwner = new Map<string, Set<QueuedInput>>();
  private readonly delayed = new Set<QueuedInput>();
  private readonly holding = new Set<QueuedInput>();

  get(inputId: string): QueuedInput | undefined {
    return this.inputs.get(inputId);
  }

  /** Adds inputs ready to run (or in the state they carry), in order. */
  add(inputs: QueuedInput[]): void {
    for (const input of inputs) {
      if (this.inputs.has(input.id)) continue;
      this.inputs.set(input.id, input);
      addToIndex(this.byCall, input.callId, input);
      this.enter(input, input.state, input.until, input.owner, "fresh");
    }
  }

  /** Hands up to `max` ready inputs of a function to a container, starting a new attempt of each. */
  take(functionId: string, owner: string, max: number, leaseUntil: number, now: number): QueuedInput[] {
    const queue = this.functions.get(functionId);
    const taken: QueuedInput[] = [];
    while (queue && taken.length < max) {
      const input = queue.shift();
      if (!input) break;
      this.leave(input);
      input.attempt += 1;
      input.dispatchedAt = now;
      this.enter(input, "running", leaseUntil, owner);
      taken.push(input);
    }
    return taken;
  }

  /** Marks an input running under an attempt a worker says it holds (after a restart or reconnect). */
  adopt(input: QueuedInput, owner: string, attempt: number, leaseUntil: number, now: number): void {
    this.leave(input);
    input.attempt = Math.max(input.attempt, attempt);
    input.dispatchedAt = now;
    this.enter(input, "running", leaseUntil, owner);
  }

  /**
   * Puts an input back in the queue: at once (`runAt` ≤ now) or after a delay. `again` (an attempt was
   * lost or failed) goes ahead of every other pending input; `fresh` joins the others in order.
   */
  requeue(input: QueuedInput, runAt: number, now: number, list: "again" | "fresh" = "again"): void {
    this.leave(input);
    if (runAt > now) this.enter(input, "delayed", runAt, undefined);
    else this.enter(input, "pending", 0, undefined, list);
  }

  /** Takes a finished (or cancelled) input out of memory. */
  remove(input: QueuedInput): void {
    if (!this.inputs.delete(input.id)) return;
    this.leave(input);
    removeFromIndex(this.byCall, input.callId, input);
  }

  extend(input: QueuedInput, leaseUntil: number): void {
    if (input.state === "running") input.until = leaseUntil;
  }

  /** Delayed inputs whose backoff is over go back to the queue; returns how many did. */
  promoteDue(now: number): number {
    let promoted = 0;
    for (const input of [...this.delayed]) {
      if (input.until > now) continue;
      this.requeue(input, 0, now);
      promoted++;
    }
    return promoted;
  }

  /** Running inputs whose lease has expired. */
  expired(now: number): QueuedInput[] {
    const out: QueuedInput[] = [];
    for (const set of this.byOwner.values()) for (const input of set) if (input.until < now) out.push(input);
    return out;
  }

  /** Inputs held since a restart, waiting to learn whether a worker still runs them. */
  held(): QueuedInput[] {
    return [...this.holding];
  }

  ofCall(callId: string): QueuedInput[] {
    return [...(this.byCall.get(callId) ?? [])];
  }

  ofOwner(owner: string): QueuedInput[] {
    return [...(this.byOwner.get(owner) ?? [])];
  }

  ofFunction(functionId: string): QueuedInput[] {
    return [...this.inputs.values()].filter((input) => input.functionId === functionId);
  }

  load(functionId: string): FunctionLoad {
    return this.functions.get(functionId)?.load ?? { pending: 0, running: 0, waiting: 0 };
  }

  /** Functions with unfinished inputs, and their load. */
  loads(): [string, FunctionLoad][] {
    const out: [string, FunctionLoad][] = [];
    for (const [functionId, queue] of this.functions) {
      const { pending, running, waiting } = queue.load;
      if (pending + running + waiting > 0) out.push([functionId, queue.load]);
    }
    return out;
  }

  private queueOf(functionId: string): FunctionQueue {
    let queue = this.functions.get(functionId);
    if (!queue) {
      queue = new FunctionQueue();
      this.functions.set(functionId, queue);
    }
    return queue;
  }

  private enter(
    input: QueuedInput,
    state: QueuedInput["state"],
    until: number,
    owner: string | undefined,
    list: "fresh" | "again" = "again",
  ): void {
    const load = this.queueOf(input.functionId).load;
    input.state = state;
    input.until = until;
    input.owner = owner;
    if (state === "pending") {
      load.pending++;
      input.ticket++;
      this.queueOf(input.functionId)[list].push(input);
    } else if (state === "running") {
      load.running++;
      addToIndex(this.byOwner, owner!, input);
    } else {
      load.waiting++;
      (state === "delayed" ? this.delayed : this.holding).add(input);
    }
  }

  /** Undoes `enter`'s counts and indexes; a FIFO entry stays behind and is skipped once reached. */
  private leave(input: QueuedInput): void {
    const load = this.queueOf(input.functionId).load;
    if (input.state === "pending") load.pending--;
    else if (input.state === "running") {
      load.running--;
      removeFromIndex(this.byOwner, input.owner!, input);
    } else if (input.state !== "gone") {
      load.waiting--;
      this.delayed.delete(input);
      this.holding.delete(input);
    }
    input.state = "gone";
    input.owner = undefined;
  }
}
