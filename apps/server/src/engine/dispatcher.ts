import { LEASE_MS } from "@skiff/protocol";
import type { InputQueue, QueuedInput } from "./queue.js";

/** A container's runner asking for up to `max` inputs. */
export interface ClaimRequest {
  functionId: string;
  containerId: string;
  max: number;
  /** Answers with the inputs handed out, or [] when the wait ended with nothing. */
  respond(inputs: QueuedInput[]): void;
}

interface Waiter extends ClaimRequest {
  timer: NodeJS.Timeout;
}

/** How long a claim waits for work before it is answered with nothing (and the runner asks again). */
const CLAIM_WAIT_MS = 20_000;

/**
 * Hands queued inputs to containers. A claim with nothing to do waits here, and is answered as soon as
 * `serve(functionId)` says inputs arrived: no polling and no store access on the hot path.
 */
export class Dispatcher {
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(private readonly queue: InputQueue) {}

  /** Hands out up to `max` ready inputs now, or parks the request until some arrive. */
  claim(request: ClaimRequest): void {
    if (!this.waiting.get(request.functionId)?.length) {
      const taken = this.take(request);
      if (taken.length > 0) {
        request.respond(taken);
        return;
      }
    }
    const waiter: Waiter = {
      ...request,
      timer: setTimeout(() => {
        this.forget(waiter);
        request.respond([]);
      }, CLAIM_WAIT_MS),
    };
    const list = this.waiting.get(request.functionId) ?? [];
    list.push(waiter);
    this.waiting.set(request.functionId, list);
  }

  /** Answers parked claims of a function, oldest first, while it has ready inputs. */
  serve(functionId: string): void {
    const list = this.waiting.get(functionId);
    while (list?.length) {
      const taken = this.take(list[0]!);
      if (taken.length === 0) return;
      const waiter = list[0]!;
      this.forget(waiter);
      waiter.respond(taken);
    }
  }

  serveAll(): void {
    for (const functionId of [...this.waiting.keys()]) this.serve(functionId);
  }

  /** Answers a container's parked claim with nothing, e.g. because it must stop. */
  release(containerId: string): void {
    for (const list of [...this.waiting.values()]) {
      for (const waiter of list.filter((w) => w.containerId === containerId)) {
        this.forget(waiter);
        waiter.respond([]);
      }
    }
  }

  private take(request: ClaimRequest): QueuedInput[] {
    const now = Date.now();
    return this.queue.take(request.functionId, request.containerId, request.max, now + LEASE_MS, now);
  }

  private forget(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const list = this.waiting.get(waiter.functionId);
    if (!list) return;
    const index = list.indexOf(waiter);
    if (index >= 0) list.splice(index, 1);
    if (list.length === 0) this.waiting.delete(waiter.functionId);
  }
}
