import { ApiError } from "../../errors.js";
import type { EngineState, FunctionInfo } from "../state.js";
import type { WebRelay } from "../workers.js";
import type { PoolSystem } from "./pools.js";

/** A request's hold on one of a container's request slots (its `maxInputs`); `release` it when the request ends. */
export interface WebLease {
  containerId: string;
  workerId: string;
  relay: WebRelay;
  /** Frees the slot for the next waiting request; a second call does nothing. */
  release(): void;
}

/**
 * How many requests a web pool may hold waiting for a container, per request slot of one container
 * (`maxInputs`): 100 × maxInputs. Beyond it a request is answered 503 at once rather than queued.
 */
export const WAITING_PER_SLOT = 100;

const NO_ENDPOINT = "no web endpoint at this URL";
/** How long a removed pool with no container left still sends late requests to its heir (`handOver`). */
const HANDOVER_MEMORY_MS = 60_000;

/** Seconds a client is told to wait (`Retry-After`) when a pool's wait queue is full. */
const RETRY_FULL_S = 1;
/** Seconds a client is told to wait when no container became ready in time. */
const RETRY_TIMEOUT_S = 5;

/** A web pool cannot take a request now: 503, with the seconds its client should wait (`Retry-After`). */
export class PoolBusy extends ApiError {
  constructor(
    message: string,
    readonly retryAfterS: number,
  ) {
    super("UNAVAILABLE", message);
    this.name = "PoolBusy";
  }
}

interface Waiter {
  /** The pool it waits in now: a deploy may move it to the pool that takes over its label (`handOver`). */
  pool: WebPool;
  exclude: ReadonlySet<string>;
  grant(lease: WebLease): void;
  fail(error: Error): void;
}

interface WebPool {
  info: FunctionInfo;
  waiting: Waiter[];
}

/**
 * Web requests: a web pool has no input queue. A request takes a slot of a ready container (running, on a
 * worker with a web relay) with the fewest requests in flight, under its `maxInputs`; with none free it
 * waits, in a bounded queue per pool, until a container frees a slot or becomes ready (`serveWaiting`), or
 * until the pool's startup timeout passes. The autoscaler counts waiting and in-flight requests as the
 * pool's load (`load`), which is how a pool scales from zero.
 */
export class WebSystem {
  private readonly pools = new Map<string, WebPool>();
  /** Requests in flight, by container id. */
  private readonly inFlight = new Map<string, number>();
  /** Web pools a deploy removed, by id, and the pool of their app that took over their label. */
  private readonly successors = new Map<string, { from: FunctionInfo; to: FunctionInfo; at: number }>();

  constructor(
    private readonly state: EngineState,
    private readonly deps: { pools: PoolSystem; requestAutoscale: () => void },
  ) {}

  /** The pool of a web function that takes requests now, or undefined (stopped, removed, not web). */
  async find(functionId: string): Promise<FunctionInfo | undefined> {
    const info = await this.deps.pools.functionInfo(functionId).catch(() => undefined);
    return info?.spec.web && !info.stopped ? info : undefined;
  }

  /** One request's log line, to its app's log watchers as a `system` line of the container that served it. */
  logRequest(info: FunctionInfo, containerId: string, line: string): void {
    this.state.hub.publishLogs([
      { ts: Date.now(), appId: info.appId, functionName: info.spec.name, containerId, stream: "system", line },
    ]);
  }

  /**
   * A slot of a ready container of the pool, once there is one; `exclude` names containers not to use (one
   * that just answered "gone"). Refuses with PoolBusy when the wait queue is full or the wait times out.
   */
  acquire(
    requested: FunctionInfo,
    options: { exclude?: ReadonlySet<string>; signal?: AbortSignal | (() => AbortSignal) } = {},
  ): Promise<WebLease> {
    // Resolved just before a deploy moved its label to another function: the request goes there.
    const info = this.current(requested);
    if (info.stopped) return Promise.reject(new ApiError("NOT_FOUND", NO_ENDPOINT));
    const exclude = options.exclude ?? new Set<string>();
    const lease = (this.pools.get(info.id)?.waiting.length ?? 0) === 0 ? this.take(info, exclude) : undefined;
    if (lease) return Promise.resolve(lease);
    // Made only now: most requests get a slot at once and never need one.
    const signal = typeof options.signal === "function" ? options.signal() : options.signal;
    if (signal?.aborted) return Promise.reject(new ApiError("CANCELLED", "the client went away"));
    const pool = this.poolOf(info);
    const bound = WAITING_PER_SLOT * info.spec.maxInputs;
    if (pool.waiting.length >= bound) {
      return Promise.reject(
        new PoolBusy(
          `${info.appName}.${info.spec.name} has ${bound} requests waiting already: try again shortly`,
          RETRY_FULL_S,
        ),
      );
    }
    return new Promise<WebLease>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        const at = waiter.pool.waiting.indexOf(waiter);
        if (at >= 0) waiter.pool.waiting.splice(at, 1);
      };
      const waiter: Waiter = {
        pool,
        exclude,
        grant: (granted) => {
          done();
          resolve(granted);
        },
        fail: (error) => {
          done();
          reject(error);
        },
      };
      const abort = () => waiter.fail(new ApiError("CANCELLED", "the client went away"));
      const seconds = Math.round(info.spec.startupTimeoutMs / 1000);
      const timer = setTimeout(
        () =>
          waiter.fail(
            new PoolBusy(
              `no container of ${info.appName}.${info.spec.name} was ready within its startupTimeout (${seconds}s): try again shortly; raise \`startupTimeout\` if its containers take longer to start, or keep one warm with minContainers (\`skiff app logs\` shows why one did not start)`,
              RETRY_TIMEOUT_S,
            ),
          ),
        info.spec.startupTimeoutMs,
      );
      signal?.addEventListener("abort", abort, { once: true });
      pool.waiting.push(waiter);
      this.deps.requestAutoscale();
    });
  }

  /** A pool's requests waiting for a slot and in flight in its containers: its load for the autoscaler. */
  load(poolId: string): { pending: number; running: number } {
    let running = 0;
    for (const container of this.state.workers.containersOf(poolId)) running += this.inFlight.get(container.id) ?? 0;
    return { pending: this.pools.get(poolId)?.waiting.length ?? 0, running };
  }

  /** The web pools with requests waiting, for the autoscaler's round. */
  waitingPools(): string[] {
    return [...this.pools].filter(([, pool]) => pool.waiting.length > 0).map(([id]) => id);
  }

  /** Requests in flight in one container: a container serving requests is not idle. */
  inFlightOf(containerId: string): number {
    return this.inFlight.get(containerId) ?? 0;
  }

  /** Hands free slots of a pool's ready containers to its waiting requests (a container started, or freed one). */
  serveWaiting(poolId: string): void {
    const pool = this.pools.get(poolId);
    if (!pool) return;
    for (let i = 0; i < pool.waiting.length; ) {
      const waiter = pool.waiting[i]!;
      const lease = this.take(pool.info, waiter.exclude);
      if (!lease) {
        i++;
        continue;
      }
      waiter.grant(lease); // removes it from `waiting`
    }
    if (pool.waiting.length === 0) this.pools.delete(poolId);
  }

  /**
   * A pool stopped (its app stopped, or a deploy removed it): its waiting requests get what a new one would,
   * which is the pool that took over its label if there is one (`handOver`), else 404.
   */
  refuseWaiting(poolId: string): void {
    const pool = this.pools.get(poolId);
    if (!pool) return;
    const successor = this.successors.get(poolId)?.to;
    if (successor && !successor.stopped) {
      this.handOver(pool.info, successor);
      return;
    }
    this.pools.delete(poolId);
    for (const waiter of [...pool.waiting]) waiter.fail(new ApiError("NOT_FOUND", NO_ENDPOINT));
  }

  /**
   * A deploy removed web pool `from` and gave its label to pool `to` of the same app (a function renamed,
   * a class made a function): its waiting requests move to `to`'s queue, keeping their place and their
   * deadline, and requests that resolved `from` just before go to `to` too. Until `to` has a ready
   * container, its requests go to `from`'s (see `predecessorsOf`).
   */
  handOver(from: FunctionInfo, to: FunctionInfo): void {
    this.successors.set(from.id, { from, to, at: Date.now() });
    // An older pool handed over to `from` now hands over to `to`: no request is left at a dead end.
    for (const [id, handed] of this.successors)
      if (handed.to.id === from.id) this.successors.set(id, { ...handed, to });
    // `to` takes requests now (a rename undone): it hands over to no one.
    this.successors.delete(to.id);
    const pool = this.pools.get(from.id);
    if (!pool) return;
    this.pools.delete(from.id);
    const target = this.poolOf(to);
    for (const waiter of pool.waiting) {
      waiter.pool = target;
      target.waiting.push(waiter);
    }
    this.serveWaiting(to.id);
    this.deps.requestAutoscale();
  }

  /** The pool a request for `info` goes to: `info`, or the pool a deploy handed its label over to. */
  private current(info: FunctionInfo): FunctionInfo {
    const successor = info.stopped ? this.successors.get(info.id)?.to : undefined;
    return successor ?? info;
  }

  /**
   * The pools that took over the label of a removed pool that still has containers, for the autoscaler's
   * round: they may have no request of their own while the old containers answer them. Forgets hand-overs
   * done (no container left, and older than any route a gateway remembers).
   */
  heirs(): string[] {
    const out = new Set<string>();
    for (const [id, { from, to, at }] of this.successors) {
      if (this.state.workers.containersOf(from.id).length > 0) out.add(to.id);
      else if (Date.now() - at > HANDOVER_MEMORY_MS) this.successors.delete(id);
    }
    return [...out];
  }

  /** The removed pools whose label `poolId` took over: their containers serve it until they are replaced. */
  predecessorsOf(poolId: string): FunctionInfo[] {
    const out: FunctionInfo[] = [];
    for (const { from, to } of this.successors.values()) if (to.id === poolId) out.push(from);
    return out;
  }

  /**
   * The ready container of the pool with the fewest requests in flight and a free slot, now holding one more;
   * else one of a pool it took the label of (a rolling deploy that renamed the function).
   */
  private take(info: FunctionInfo, exclude: ReadonlySet<string>): WebLease | undefined {
    return this.takeOf(info, [info], exclude) ?? this.takeOf(info, this.predecessorsOf(info.id), exclude);
  }

  /** A slot of the least-loaded ready container of `pools`, for a request of `info`'s pool. */
  private takeOf(info: FunctionInfo, pools: FunctionInfo[], exclude: ReadonlySet<string>): WebLease | undefined {
    if (pools.length === 0) return undefined;
    let best: { containerId: string; workerId: string; relay: WebRelay; load: number } | undefined;
    for (const pool of pools) {
      const max = pool.spec.maxInputs;
      for (const { worker, container } of this.state.workers.placedIn(pool.id)) {
        if (!worker.webRelay || container.state !== "running" || container.stopping) continue;
        if (exclude.has(container.id)) continue;
        const load = this.inFlight.get(container.id) ?? 0;
        if (load >= max || (best && load >= best.load)) continue;
        best = { containerId: container.id, workerId: worker.id, relay: worker.webRelay, load };
      }
    }
    if (!best) return undefined;
    const { containerId } = best;
    this.inFlight.set(containerId, best.load + 1);
    let released = false;
    return {
      containerId,
      workerId: best.workerId,
      relay: best.relay,
      release: () => {
        if (released) return;
        released = true;
        const left = (this.inFlight.get(containerId) ?? 1) - 1;
        if (left > 0) this.inFlight.set(containerId, left);
        else this.inFlight.delete(containerId);
        this.serveWaiting(info.id);
        // A deploy gave the pool's label to another since: its requests may wait for this slot now.
        const heir = this.successors.get(info.id)?.to;
        if (heir) this.serveWaiting(heir.id);
      },
    };
  }

  private poolOf(info: FunctionInfo): WebPool {
    const pool = this.pools.get(info.id) ?? { info, waiting: [] };
    pool.info = info;
    this.pools.set(info.id, pool);
    return pool;
  }
}
