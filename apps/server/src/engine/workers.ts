import type { Capacity, ServerToWorker } from "@skiff/protocol";

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
}

/** Where the server sends a worker's containers' web requests, and the secret that proves they are its. */
export interface WebRelay {
  url: string;
  secret: string;
}

/** A connected worker agent, as the scheduler sees it. */
export interface WorkerConn {
  id: string;
  name: string;
  capacity: Capacity;
  /** Its web relay, if it serves web functions (see the worker's hello). */
  webRelay?: WebRelay | undefined;
  containers: Map<string, ContainerInfo>;
  send(message: ServerToWorker): void;
}

/** The workers connected to this server replica and the containers they run. */
export class WorkerRegistry {
  private readonly workers = new Map<string, WorkerConn>();

  add(worker: WorkerConn): void {
    this.workers.set(worker.id, worker);
  }

  remove(workerId: string): WorkerConn | undefined {
    const worker = this.workers.get(workerId);
    this.workers.delete(workerId);
    return worker;
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
    const out: ContainerInfo[] = [];
    for (const worker of this.workers.values()) {
      for (const container of worker.containers.values()) if (container.functionId === functionId) out.push(container);
    }
    return out;
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
