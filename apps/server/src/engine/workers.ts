import type { Capacity, ColdStart, ServerToWorker } from "@skiff/protocol";

export interface ContainerInfo {
  id: string;
  functionId: string;
  cpu: number;
  memoryMiB: number;
  state: "starting" | "running";
  /** The app version it runs. */
  version: number;
  /** Asked to stop: it finishes what it runs and takes nothing more. */
  stopping: boolean;
  /** How it started, with the server's `placement` phase, once it runs (see ContainerSystem.started). */
  start?: ColdStart | undefined;
  /** How long after it was ready its first input finished, in ms. */
  firstInputMs?: number | undefined;
  /** When it got ready, while its first input has not finished (see ContainerSystem.inputsFinished). */
  readyAt?: number | undefined;
}

/** Where the server sends a worker's containers' web requests, and the secret that proves they are its. */
export interface WebRelay {
  url: string;
  secret: string;
}

/** A container with the worker that runs it. */
export interface PlacedContainer {
  worker: WorkerConn;
  container: ContainerInfo;
}

/** A connected worker agent, as the scheduler sees it. */
export interface WorkerConn {
  id: string;
  name: string;
  capacity: Capacity;
  /** Its web relay, if it serves web functions (see the worker's hello). */
  webRelay?: WebRelay | undefined;
  /** What it runs: changed only through the registry's placeContainer/dropContainer, which index them. */
  readonly containers: ReadonlyMap<string, ContainerInfo>;
  send(message: ServerToWorker): void;
}

/** The workers connected to this server replica and the containers they run. */
export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerConn>();
  /**
   * The registered workers' containers by the pool (function id) they serve: a web request picks among its
   * pool's containers without a pass over every container of every worker.
   */
  private readonly byPool = new Map<string, Map<string, PlacedContainer>>();

  /** A worker joins, with the containers it runs. */
  add(worker: WorkerConn): void {
    this.workers.set(worker.id, worker);
    for (const container of worker.containers.values()) this.index(worker, container);
  }

  remove(workerId: string): WorkerConn | undefined {
    const worker = this.workers.get(workerId);
    this.workers.delete(workerId);
    for (const container of worker?.containers.values() ?? []) this.unindex(container);
    return worker;
  }

  /** A container placed on a worker (indexed now if the worker is registered, else once it is added). */
  placeContainer(worker: WorkerConn, container: ContainerInfo): void {
    (worker.containers as Map<string, ContainerInfo>).set(container.id, container);
    if (this.workers.get(worker.id) === worker) this.index(worker, container);
  }

  /** A container gone from its worker. */
  dropContainer(worker: WorkerConn, containerId: string): ContainerInfo | undefined {
    const container = worker.containers.get(containerId);
    (worker.containers as Map<string, ContainerInfo>).delete(containerId);
    if (container) this.unindex(container);
    return container;
  }

  /** The containers of one pool (function id), with their workers. */
  placedIn(functionId: string): Iterable<PlacedContainer> {
    return this.byPool.get(functionId)?.values() ?? [];
  }

  private index(worker: WorkerConn, container: ContainerInfo): void {
    let pool = this.byPool.get(container.functionId);
    if (!pool) {
      pool = new Map();
      this.byPool.set(container.functionId, pool);
    }
    pool.set(container.id, { worker, container });
  }

  private unindex(container: ContainerInfo): void {
    const pool = this.byPool.get(container.functionId);
    if (!pool?.delete(container.id) || pool.size > 0) return;
    this.byPool.delete(container.functionId);
  }

  get(workerId: string): WorkerConn | undefined {
    return this.workers.get(workerId);
  }

  all(): WorkerConn[] {
    return [...this.workers.values()];
  }

  /** The worker running a container, if it is connected. */
  ownerOf(containerId: string): WorkerConn | undefined {
    for (const worker of this.workers.values()) if (worker.containers.has(containerId)) return worker;
    return undefined;
  }

  containersOf(functionId: string): ContainerInfo[] {
    return [...this.placedIn(functionId)].map(({ container }) => container);
  }

  /** Every container with its worker, by the pool (function id) it serves: one pass over all of them. */
  containersByPool(): Map<string, { worker: WorkerConn; container: ContainerInfo }[]> {
    const out = new Map<string, { worker: WorkerConn; container: ContainerInfo }[]>();
    for (const worker of this.workers.values()) {
      for (const container of worker.containers.values()) {
        const list = out.get(container.functionId);
        if (list) list.push({ worker, container });
        else out.set(container.functionId, [{ worker, container }]);
      }
    }
    return out;
  }

  /** Best fit: the connected worker with the least room that still fits, so idle workers can drain. */
  place(need: { cpu: number; memoryMiB: number }): WorkerConn | undefined {
    let best: { worker: WorkerConn; room: number } | undefined;
    for (const worker of this.workers.values()) {
      let cpu = worker.capacity.cpu;
      let memory = worker.capacity.memoryMiB;
      for (const container of worker.containers.values()) {
        cpu -= container.cpu;
        memory -= container.memoryMiB;
      }
      if (cpu < need.cpu || memory < need.memoryMiB) continue;
      const room = memory - need.memoryMiB;
      if (!best || room < best.room) best = { worker, room };
    }
    return best?.worker;
  }
}
