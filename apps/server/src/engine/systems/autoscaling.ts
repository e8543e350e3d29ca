import { capacityProblem, waitingForCapacity } from "../capacity.js";
import type { EngineState, FunctionInfo } from "../state.js";
import { desiredContainers, inputsPerContainer } from "./autoscaler.js";
import type { ContainerSystem } from "./containers.js";
import { isCurrent, minContainersOf, type PoolSystem, replaceable } from "./pools.js";
import type { WebSystem } from "./web.js";

/** A warm pool whose secrets could not be resolved tries again after this long, not four times a second. */
const CANNOT_START_BACKOFF_MS = 30_000;
/** How often a pool whose containers wait for room says so to its app's log watchers. */
const WAITING_NOTICE_MS = 15_000;

/**
 * Runs the autoscaler: samples each pool with work, warm containers or containers of an older version,
 * asks `desiredContainers` how many it wants, and starts (or, for older versions, stops) containers to
 * match. Only containers of the current version count; older ones stop once the pool has nothing for
 * them (see ContainerSystem.started for the rest).
 */
export class AutoscalingSystem {
  private scaling: Promise<void> | undefined;
  private scaleAgain = false;
  /** When a pool with work and no room last said it waits for capacity. */
  private readonly waitingNoticed = new Map<string, number>();

  constructor(
    private readonly state: EngineState,
    private readonly deps: { pools: PoolSystem; containers: ContainerSystem; web: WebSystem },
  ) {}

  /** Runs the autoscaler soon; calls that arrive while it runs cause one more pass. */
  request(): void {
    if (this.scaling) {
      this.scaleAgain = true;
      return;
    }
    this.scaling = this.pass()
      .catch((error) => this.state.log.error({ err: error }, "autoscale failed"))
      .finally(() => {
        this.scaling = undefined;
        if (this.scaleAgain) {
          this.scaleAgain = false;
          this.request();
        }
      });
  }

  /** One round over every pool that has work, keeps containers warm, or has containers. */
  async pass(): Promise<void> {
    const { workers, queue, warm, cannotStart, timings, log } = this.state;
    const { pools, containers, web } = this.deps;
    if (workers.all().length === 0) return;
    // One pass over the containers per round, not one per pool: idle pools are visited every round.
    const byPool = workers.containersByPool();
    const poolIds = new Set([
      ...queue.loads().map(([id]) => id),
      ...web.waitingPools(),
      ...web.heirs(),
      ...warm,
      ...byPool.keys(),
    ]);
    for (const functionId of poolIds) {
      const info = await pools.functionInfo(functionId).catch(() => undefined);
      if (!info || info.stopped) {
        warm.delete(functionId);
        web.refuseWaiting(functionId);
        continue;
      }
      const { spec } = info;
      // A web pool's load is its requests, waiting and in flight; other pools', their inputs.
      const load = spec.web ? web.load(functionId) : queue.load(functionId);
      const work = load.pending + load.running;
      const min = minContainersOf(info);
      const target = inputsPerContainer(spec);
      const pool = byPool.get(functionId) ?? [];
      // A web pool replaces each running container of an older version with one of the new (a rolling
      // deploy): requests keep going to the old ones until then, and no client waits for a cold start.
      const outgoing = spec.web
        ? [pool, ...web.predecessorsOf(functionId).map((from) => byPool.get(from.id) ?? [])]
            .flat()
            .filter(({ container }) => replaceable(container, info))
        : [];
      const floor = Math.max(min, Math.min(outgoing.length, spec.maxContainers));
      const desired = Math.max(desiredContainers({ spec, minContainers: min, load }), floor);
      if (work === 0 && Date.now() - (cannotStart.get(info.id) ?? 0) < CANNOT_START_BACKOFF_MS) continue;
      if (desired === 0) {
        // The pool wants no container: older ones go now. Otherwise they go once a new one runs ("started").
        for (const { worker, container } of pool) {
          if (container.version < info.version)
            containers.stop(worker, container, `replaced by version ${info.version}`);
        }
      }
      const current = pool.filter(({ container }) => isCurrent(container, info));
      const live = current.length;
      // Old containers left once the new version has all it wants, all ready (one of the new ones failed to
      // start, say), go too: a client never sees the versions alternate for long.
      if (outgoing.length > 0 && live > 0 && live >= desired && current.every((c) => c.container.state === "running")) {
        for (const { worker, container } of outgoing)
          containers.stop(worker, container, `replaced by version ${info.version}`);
      }
      for (let i = live; i < desired; i++) {
        // Beyond the minimum, a new container must beat the live ones to the end of the backlog.
        if (i >= floor && !timings.worthAnotherContainer(info.id, work, i * target)) break;
        const worker = workers.place({ cpu: spec.cpu, memoryMiB: spec.memoryMiB });
        if (!worker) {
          log.debug({ function: spec.name }, "no worker has room for another container");
          // Idle containers of other pools, kept warm only by their scaledown window, give way to waiting work.
          if (load.pending > 0 && !(await containers.makeRoom(spec))) this.sayWaiting(info);
          break;
        }
        this.waitingNoticed.delete(info.id);
        if (!(await containers.start(worker, info))) break;
      }
    }
  }

  /** Forgets start failures past their backoff, and old waiting notices. */
  forgetOld(now: number): void {
    for (const [poolId, at] of this.state.cannotStart)
      if (at < now - CANNOT_START_BACKOFF_MS) this.state.cannotStart.delete(poolId);
    for (const [poolId, at] of this.waitingNoticed)
      if (at < now - WAITING_NOTICE_MS) this.waitingNoticed.delete(poolId);
  }

  /** Tells the app's log watchers (`skiff run`, `skiff app logs`) that a pool waits for room, now and then. */
  private sayWaiting(info: FunctionInfo): void {
    const now = Date.now();
    if (now - (this.waitingNoticed.get(info.id) ?? 0) < WAITING_NOTICE_MS) return;
    this.waitingNoticed.set(info.id, now);
    const where = `${info.spec.kind} "${info.spec.name}"`;
    const workers = this.state.workers.all();
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
    this.state.log.info({ function: info.spec.name, pool: info.id }, line);
    this.state.hub.publishLogs([
      { ts: now, appId: info.appId, functionName: info.spec.name, containerId: "ct-server", stream: "system", line },
    ]);
  }
}
