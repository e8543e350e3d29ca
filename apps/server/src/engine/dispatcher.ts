import { type ClaimedInput, LEASE_MS } from "@skiff/protocol";
import type { Store } from "@skiff/store";

/** A container's runner asking for work, parked until inputs arrive or the wait times out. */
/** A claimed input as the container gets it, with the call it answers. */
export type Dispatched = ClaimedInput & { callId: string; idx: number };

interface Waiter {
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

  constructor(private readonly store: Store) {}

  /** Claims up to `max` inputs now, or parks the request until some arrive (then answers []). */
  async claim(request: {
    functionId: string;
    containerId: string;
    max: number;
    timeoutMs: number;
    respond: (inputs: Dispatched[]) => void;
  }): Promise<void> {
    const claimed = await this.claimNow(request.functionId, request.containerId, request.max, request.timeoutMs);
    if (claimed.length > 0) return request.respond(claimed);
    const waiter: Waiter = {
      ...request,
      timer: setTimeout(() => {
        this.forget(request.functionId, waiter);
        request.respond([]);
      }, CLAIM_WAIT_MS),
    };
    const list = this.waiting.get(request.functionId) ?? [];
    list.push(waiter);
    this.waiting.set(request.functionId, list);
    // An input may have landed between our claim and parking.
    this.wake(request.functionId);
  }

  /** Serves parked claims of a function; calls made during a drain run it once more afterwards. */
  wake(functionId: string): void {
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

  /** Wakes every function with parked claims: picks up retries whose backoff ended. */
  wakeAll(): void {
    for (const functionId of this.waiting.keys()) this.wake(functionId);
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

  waitingCount(functionId: string): number {
    return this.waiting.get(functionId)?.length ?? 0;
  }

  private async drain(functionId: string): Promise<void> {
    for (;;) {
      const waiter = this.waiting.get(functionId)?.[0];
      if (!waiter) return;
      const claimed = await this.claimNow(functionId, waiter.containerId, waiter.max, waiter.timeoutMs);
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
