import { type ClaimedInput, LEASE_MS } from "@skiff/protocol";
import type { Store } from "@skiff/store";

/** A container's runner asking for work, parked until inputs arrive or the wait times out. */
/** A claimed input as the container gets it, with the call it answers. */
export type Dispatched = ClaimedInput & { callId: string; idx: number };

export interface Waiter {
  containerId: string;
  max: number;
  timeoutMs: number;
  respond(inputs: Dispatched[]): void;
  timer: NodeJS.Timeout;
}

const CLAIM_WAIT_MS = 20_000;

/**
 * Hands inputs to containers. A claim with nothing to do waits here (no polling on the hot path) and is
 * served as soon as `wake(functionId)` says inputs were submitted or requeued.
 */
export class Dispatcher {
  private readonly waiting = new Map<string, Waiter[]>();
  private readonly draining = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /**
   * Per function, bumped by every wake (a submit, a requeue, the periodic tick). A claim that found less
   * than it asked for, with no wake since it started, proves the queue empty: later claims park at once
   * instead of asking the store again.
   */
  private readonly epochs = new Map<string, number>();
  private readonly emptyAt = new Map<string, number>();

  constructor(private readonly store: Store) {}

  /** Claims up to `max` inputs now, or parks the request until some arrive (then answers []). */
  async claim(request: {
    functionId: string;
    containerId: string;
    max: number;
    timeoutMs: number;
    respond: (inputs: Dispatched[]) => void;
  }): Promise<void> {
    const { functionId } = request;
    if (this.mayHaveWork(functionId)) {
      const epoch = this.epochOf(functionId);
      const claimed = await this.claimNow(functionId, request.containerId, request.max, request.timeoutMs);
      if (claimed.length < request.max) this.noWorkSince(functionId, epoch);
      if (claimed.length > 0) return request.respond(claimed);
    }
    const waiter: Waiter = {
      ...request,
      timer: setTimeout(() => {
        this.forget(functionId, waiter);
        request.respond([]);
      }, CLAIM_WAIT_MS),
    };
    const list = this.waiting.get(functionId) ?? [];
    list.push(waiter);
    this.waiting.set(functionId, list);
    // Inputs that landed while we were claiming: serve them now.
    if (this.mayHaveWork(functionId)) this.wake(functionId);
  }

  /** Serves parked claims of a function; calls made during a drain run it once more afterwards. */
  wake(functionId: string): void {
    this.epochs.set(functionId, this.epochOf(functionId) + 1);
    if (!this.waiting.get(functionId)?.length) return;
    if (this.draining.has(functionId)) {
      this.again.add(functionId);
      return;
    }
    const run = this.drain(functionId).finally(() => {
      this.draining.delete(functionId);
      if (this.again.delete(functionId)) this.wake(functionId);
    });
    this.draining.set(functionId, run);
  }

  /**
   * Takes parked claims with room for up to `count` inputs, for a submit that leases its inputs to them
   * directly. Each must be answered: `respond`, or `park` again.
   */
  take(functionId: string, count: number): Waiter[] {
    const taken: Waiter[] = [];
    let room = 0;
    for (const waiter of [...(this.waiting.get(functionId) ?? [])]) {
      if (room >= count) break;
      this.forget(functionId, waiter);
      taken.push(waiter);
      room += waiter.max;
    }
    return taken;
  }

  /** Parks a taken claim again (its submit leased it nothing). */
  park(functionId: string, waiter: Waiter): void {
    void this.claim({ ...waiter, functionId });
  }

  /** Wakes every function with parked claims: picks up retries whose backoff ended, and other replicas' submits. */
  wakeAll(): void {
    for (const functionId of [...this.waiting.keys()]) this.wake(functionId);
  }

  /** Answers a container's parked claim with nothing, e.g. because it must stop. */
  release(containerId: string): void {
    for (const [functionId, list] of this.waiting) {
      for (const waiter of list.filter((w) => w.containerId === containerId)) {
        this.forget(functionId, waiter);
        waiter.respond([]);
      }
    }
  }

  private epochOf(functionId: string): number {
    return this.epochs.get(functionId) ?? 0;
  }

  private mayHaveWork(functionId: string): boolean {
    return this.emptyAt.get(functionId) !== this.epochOf(functionId);
  }

  private noWorkSince(functionId: string, epoch: number): void {
    if (this.epochOf(functionId) === epoch) this.emptyAt.set(functionId, epoch);
  }

  private async drain(functionId: string): Promise<void> {
    for (;;) {
      const waiter = this.waiting.get(functionId)?.[0];
      if (!waiter) return;
      const epoch = this.epochOf(functionId);
      const claimed = await this.claimNow(functionId, waiter.containerId, waiter.max, waiter.timeoutMs);
      if (claimed.length < waiter.max) this.noWorkSince(functionId, epoch);
      if (claimed.length === 0) return;
      this.forget(functionId, waiter);
      waiter.respond(claimed);
    }
  }

  private forget(functionId: string, waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const list = this.waiting.get(functionId);
    if (!list) return;
    const index = list.indexOf(waiter);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.waiting.delete(functionId);
  }

  private async claimNow(
    functionId: string,
    containerId: string,
    max: number,
    timeoutMs: number,
  ): Promise<Dispatched[]> {
    const rows = await this.store.claim({ functionId, owner: containerId, max, leaseMs: LEASE_MS });
    return rows.map((row) => ({ ...row, timeoutMs }));
  }
}
