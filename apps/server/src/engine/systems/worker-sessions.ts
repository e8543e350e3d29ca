import { type AttemptRef, LEASE_MS, type WorkerMessage } from "@skiff/protocol";
import type { QueuedInput } from "../queue.js";
import type { EngineState } from "../state.js";
import type { WorkerConn } from "../workers.js";
import type { Systems } from "./systems.js";

type Handlers = {
  [T in WorkerMessage["t"]]: (worker: WorkerConn, message: Extract<WorkerMessage, { t: T }>) => unknown;
};

/** What a worker still runs when it says hello: an attempt, and the container running it if any. */
export type HeldAttempt = AttemptRef & { containerId?: string | undefined };

/**
 * Worker sessions: a worker's hello (adopting the containers and attempts it still has), the router that
 * hands each of its messages to the system that owns it, and its disconnect.
 */
export class WorkerSessionSystem {
  private readonly handlers: Handlers;

  constructor(
    private readonly state: EngineState,
    private readonly deps: Pick<
      Systems,
      "pools" | "attempts" | "containers" | "apps" | "relays" | "recovery" | "web" | "requestAutoscale"
    >,
  ) {
    const { attempts, containers, apps, relays } = deps;
    this.handlers = {
      hello: () => {},
      claim: (worker, message) => attempts.claim(worker, message),
      outputs: (worker, message) => {
        containers.inputsFinished(worker, message.outputs);
        return attempts.outputs(worker, message.seq, message.outputs);
      },
      items: (_, message) => attempts.items(message.items),
      unclaim: (_, message) => state.dispatcher.release(message.containerId),
      return: (_, message) => attempts.returned(message.inputs),
      heartbeat: (_, message) => attempts.heartbeat(message.inputs),
      logs: (worker, message) => apps.logs(worker, message),
      started: (worker, message) => containers.started(worker, message),
      idle: (worker, message) => containers.idle(worker, message),
      stopped: (worker, message) => containers.stopped(worker, message),
      "shell-output": (_, message) => relays.shellMessage(message),
      "shell-exit": (_, message) => relays.shellMessage(message),
      "build-log": (_, message) => relays.buildMessage(message),
      "build-done": (_, message) => relays.buildMessage(message),
    };
  }

  /** Hands a worker's message to the system that owns its type. */
  async route(worker: WorkerConn, message: WorkerMessage): Promise<void> {
    const handle = this.handlers[message.t] as (worker: WorkerConn, message: WorkerMessage) => unknown;
    await handle(worker, message);
  }

  /**
   * A worker said hello: containers that survived a server restart or a reconnect are adopted if still
   * wanted, attempts it still runs stay leased to it, and anything else leased to it was lost.
   */
  async connect(worker: WorkerConn, runtime: string, containers: string[], held: HeldAttempt[]): Promise<void> {
    const { store, workers, queue, log } = this.state;
    await store.fleet.upsertWorker({ id: worker.id, name: worker.name, runtime, capacity: worker.capacity });
    const previous = workers.remove(worker.id);
    // Containers that survived a server restart or a reconnect: adopt those we know and still want.
    const known = new Map((await store.fleet.liveContainers()).map((c) => [c.id, c]));
    const gone = [...known.values()].filter((c) => c.workerId === worker.id && !containers.includes(c.id));
    if (gone.length > 0)
      await store.fleet.stopContainers(
        gone.map((c) => c.id),
        "worker restarted",
      );
    for (const containerId of containers) {
      const row = known.get(containerId);
      const info = row ? await this.deps.pools.functionInfo(row.functionId).catch(() => undefined) : undefined;
      if (!row || !info || info.stopped) {
        worker.send({ t: "stop", containerId, reason: "unknown to the server" });
        continue;
      }
      workers.placeContainer(worker, {
        id: containerId,
        functionId: row.functionId,
        cpu: info.spec.cpu,
        memoryMiB: info.spec.memoryMiB,
        state: "running",
        version: row.version,
        stopping: false,
        start: row.start,
        firstInputMs: row.firstInputMs,
      });
    }
    // What it still runs stays leased to it; anything else leased to its containers was lost with them.
    const now = Date.now();
    const holds = new Set<QueuedInput>();
    for (const ref of held) {
      const input = queue.get(ref.inputId);
      if (!input || (input.state === "running" && input.attempt > ref.attempt)) continue;
      queue.adopt(input, ref.containerId ?? `worker:${worker.id}`, ref.attempt, now + LEASE_MS, now);
      holds.add(input);
    }
    const mine = new Set([...(previous?.containers.keys() ?? []), ...gone.map((c) => c.id), ...containers]);
    mine.add(`worker:${worker.id}`);
    const lost = [...mine].flatMap((owner) => queue.ofOwner(owner)).filter((input) => !holds.has(input));
    this.deps.attempts.loseAll(lost, "the input's worker restarted");
    workers.add(worker);
    for (const container of worker.containers.values()) this.deps.web.serveWaiting(container.functionId);
    log.info({ worker: worker.name, adopted: worker.containers.size, held: holds.size }, "worker connected");
    this.deps.recovery.workerBack(worker.id);
    this.deps.requestAutoscale();
  }

  /** A worker's connection closed: its shells and builds end; its leases expire unless it comes back. */
  async disconnect(worker: WorkerConn): Promise<void> {
    const { workers, dispatcher, log } = this.state;
    if (workers.get(worker.id) !== worker) return;
    workers.remove(worker.id);
    for (const container of worker.containers.values()) dispatcher.release(container.id);
    this.deps.relays.workerGone(worker);
    // Its leases expire unless it comes back and says what it still holds; the tick requeues them then.
    log.warn({ worker: worker.name }, "worker disconnected");
  }
}
