import { randomUUID } from "node:crypto";
import {
  type BucketCredentials,
  type ColdStart,
  type ContainerView,
  coldStartMs,
  type ImageSecrets,
  runnerEnvironment,
  type WorkerMessage,
  type WorkerOutput,
} from "@skiff/protocol";
import type { EngineState, FunctionInfo } from "../state.js";
import type { ContainerInfo, WorkerConn } from "../workers.js";
import type { BuildVolumes } from "./build-grants.js";
import { minContainersOf, replaceable } from "./pools.js";
import type { Systems } from "./systems.js";

type ContainerMessage<T extends WorkerMessage["t"]> = Extract<WorkerMessage, { t: T }>;

/**
 * Containers: starting them (with their secrets and a token minted for them), stopping them, making room
 * for waiting work, and what workers report of them (started, idle, stopped).
 */
export class ContainerSystem {
  constructor(
    private readonly state: EngineState,
    private readonly deps: Pick<Systems, "pools" | "secrets" | "builds" | "attempts" | "web" | "requestAutoscale"> & {
      /** A container of this app is gone (its log watchers may be waiting for the last one). */
      containerGone: (appId: string) => void;
    },
  ) {}

  /** The containers the workers run for a workspace's apps, for `skiff container list`. */
  list(workspace: string): ContainerView[] {
    return this.state.workers.all().flatMap((worker) =>
      [...worker.containers.values()].flatMap((container) => {
        const info = this.state.functions.get(container.functionId);
        if (info?.workspace !== workspace) return [];
        return {
          id: container.id,
          worker: worker.name,
          appId: info?.appId ?? "",
          function: info?.spec.name ?? container.functionId,
          pool: [info.params, info.overrides && JSON.stringify(info.overrides)].filter(Boolean).join(" "),
          state: container.state,
          version: container.version,
          start: container.start,
          firstInputMs: container.firstInputMs,
        };
      }),
    );
  }

  /** Starts a container of a pool; false if its secrets cannot be resolved (its waiting inputs then fail). */
  async start(worker: WorkerConn, info: FunctionInfo): Promise<boolean> {
    const { store, starting, cannotStart } = this.state;
    let secrets: Record<string, string>;
    let imageSecrets: ImageSecrets;
    let bucketCredentials: Record<string, BucketCredentials>;
    let volumes: { volumeId: string; readOnly: boolean }[];
    let buildVolumes: BuildVolumes | undefined;
    try {
      secrets = await this.deps.secrets.secretsFor(info);
      imageSecrets = await this.deps.secrets.imageSecrets(info, info.spec.image);
      bucketCredentials = await this.deps.secrets.bucketCredentialsFor(info);
      volumes = await this.volumesOf(info);
      buildVolumes = await this.deps.builds.volumesOf(info, info.spec.image, {
        author: `app ${info.appName}`,
        strict: false,
      });
    } catch (error) {
      cannotStart.set(info.id, Date.now());
      const message = `${info.spec.name} cannot start: ${(error as Error).message}`;
      await this.deps.attempts.failFunction(info.id, message, undefined);
      return false;
    }
    const containerId = `ct-${randomUUID().slice(0, 13)}`;
    starting.set(containerId, { functionId: info.id, at: Date.now() });
    this.state.workers.placeContainer(worker, {
      id: containerId,
      functionId: info.id,
      cpu: info.spec.cpu,
      memoryMiB: info.spec.memoryMiB,
      state: "starting",
      version: info.version,
      stopping: false,
    });
    // Its image is built, if it must be, before it starts: the build reaches its steps' volumes until then.
    const build = buildVolumes
      ? await this.deps.builds.grant(worker, buildVolumes, { containerId, appId: info.appId, functionId: info.id })
      : undefined;
    const [token, functionIds] = await Promise.all([
      store.fleet.addContainer({
        id: containerId,
        workerId: worker.id,
        functionId: info.id,
        version: info.version,
        workspace: info.workspace,
        appId: info.appId,
        env: info.env,
        volumes,
      }),
      store.apps.functionIds(info.appId),
    ]);
    worker.send({
      t: "start",
      containerId,
      appId: info.appId,
      appName: info.appName,
      functionId: info.id,
      bundleHash: info.bundleHash,
      spec: info.spec,
      env: runnerEnvironment({ SKIFF_PARAMS: info.params }),
      secrets,
      ...imageSecrets,
      ...(build ? { buildVolumes: build.buildVolumes } : {}),
      appEnv: info.env,
      token,
      functionIds,
      bucketCredentials,
    });
    return true;
  }

  /**
   * The volumes a function mounts, as its container's token will reach them. One deleted since the deploy is
   * made again if it is marked `createIfMissing`; otherwise the container cannot start.
   */
  private async volumesOf(info: FunctionInfo): Promise<{ volumeId: string; readOnly: boolean }[]> {
    const { store } = this.state;
    const out: { volumeId: string; readOnly: boolean }[] = [];
    for (const mount of info.spec.volumes ?? []) {
      if (mount.kind !== "volume") continue;
      const volume = await store.volumes.resolve(info, mount.name, {
        createIfMissing: mount.createIfMissing,
        author: `app ${info.appName}`,
      });
      if (!volume) throw new Error(missingVolume(`function "${info.spec.name}"`, mount.name, info.env));
      out.push({ volumeId: volume.id, readOnly: mount.readOnly });
    }
    return out;
  }

  /** Asks the containers `which` picks to finish what they run and stop. */
  stopAll(which: (container: ContainerInfo) => boolean, reason: string): void {
    for (const worker of this.state.workers.all()) {
      for (const container of worker.containers.values()) if (which(container)) this.stop(worker, container, reason);
    }
  }

  /** Asks one container to finish what it runs and stop; it takes no more inputs meanwhile. */
  stop(worker: WorkerConn, container: ContainerInfo, reason: string): void {
    if (container.stopping) return;
    container.stopping = true;
    this.state.dispatcher.release(container.id);
    worker.send({ t: "stop", containerId: container.id, reason });
  }

  /**
   * Makes room on one worker for a container of `need` by stopping idle containers (running, holding no
   * input, of a pool with nothing waiting and more containers than its minContainers), the fewest needed.
   * True when room is made or already on its way (containers stopping); the caller places it next round.
   */
  async makeRoom(need: { cpu: number; memoryMiB: number }): Promise<boolean> {
    const { workers } = this.state;
    for (const worker of workers.all()) {
      let cpu = worker.capacity.cpu;
      let memory = worker.capacity.memoryMiB;
      const idle: ContainerInfo[] = [];
      const spare = new Map<string, number>();
      for (const container of worker.containers.values()) {
        if (container.stopping) continue;
        cpu -= container.cpu;
        memory -= container.memoryMiB;
        if (container.state !== "running" || this.busy(container.id)) continue;
        const info = await this.deps.pools.functionInfo(container.functionId).catch(() => undefined);
        if (!info || this.waiting(info.id)) continue;
        if (!spare.has(info.id))
          spare.set(info.id, this.deps.pools.currentContainers(info).length - minContainersOf(info));
        idle.push(container);
      }
      if (cpu >= need.cpu && memory >= need.memoryMiB) return true;
      const chosen: ContainerInfo[] = [];
      for (const container of idle) {
        if (cpu >= need.cpu && memory >= need.memoryMiB) break;
        const left = spare.get(container.functionId) ?? 0;
        if (left <= 0) continue;
        spare.set(container.functionId, left - 1);
        chosen.push(container);
        cpu += container.cpu;
        memory += container.memoryMiB;
      }
      if (cpu < need.cpu || memory < need.memoryMiB) continue;
      for (const container of chosen) this.stop(worker, container, "idle: its room went to waiting work");
      return true;
    }
    return false;
  }

  /**
   * A container is ready: its cold start is noted (with the server's part of it, `placement`), and older
   * versions of its pool drain (a rolling deploy).
   */
  async started(worker: WorkerConn, message: ContainerMessage<"started">): Promise<void> {
    const { starting, timings, store, functions } = this.state;
    const now = Date.now();
    const container = worker.containers.get(message.containerId);
    if (container) container.state = "running";
    if (container) this.deps.web.serveWaiting(container.functionId);
    const started = starting.get(message.containerId);
    starting.delete(message.containerId);
    if (started) timings.noteColdStart(started.functionId, now - started.at);
    const start = message.start && withPlacement(message.start, started ? now - started.at : undefined);
    if (container) container.start = start;
    if (container && !functions.get(container.functionId)?.spec.web) container.readyAt = now;
    await store.fleet.containerStarted(message.containerId, start);
    await this.deps.builds.startEnded(message.containerId);
    const info = container && functions.get(container.functionId);
    if (!container || !info) return;
    const reason = `replaced by version ${info.version}`;
    if (container.version < info.version) {
      // Started for a version that was replaced meanwhile: redundant once its pool has a current one.
      if (this.deps.pools.replaced(container, info)) this.stopAll((c) => c === container, reason);
      return;
    }
    if (!info.spec.web) {
      this.stopAll((other) => other.functionId === container.functionId && other.version < info.version, reason);
      return;
    }
    // A web pool replaces its old containers one for one (see AutoscalingSystem.pass): this one takes the
    // place of the old one with the fewest requests in flight, which finishes them and stops.
    const pools = [container.functionId, ...this.deps.web.predecessorsOf(container.functionId).map((p) => p.id)];
    const outgoing = pools
      .flatMap((poolId) => this.state.workers.containersOf(poolId))
      .filter((other) => replaceable(other, info))
      .sort((a, b) => this.deps.web.inFlightOf(a.id) - this.deps.web.inFlightOf(b.id));
    const old = outgoing[0];
    if (old) this.stopAll((c) => c === old, reason);
  }

  /**
   * Outputs a worker sent, before they are handled: the first one of a container since it got ready says how
   * long after that its first input finished. Two map lookups per output on this path; one write per container,
   * off it.
   */
  inputsFinished(worker: WorkerConn, outputs: WorkerOutput[]): void {
    const now = Date.now();
    for (const output of outputs) {
      const owner = this.state.queue.get(output.inputId)?.owner;
      const container = owner === undefined ? undefined : worker.containers.get(owner);
      if (container?.readyAt === undefined) continue;
      container.firstInputMs = now - container.readyAt;
      container.readyAt = undefined;
      this.state.store.fleet
        .firstInputFinished(container.id, container.firstInputMs)
        .catch((error: unknown) => this.state.log.warn({ err: error }, "recording a first input failed"));
    }
  }

  /** Idle past its scaledown window: it may stop unless its pool needs it warm or has work waiting. */
  async idle(worker: WorkerConn, message: ContainerMessage<"idle">): Promise<void> {
    const container = worker.containers.get(message.containerId);
    const info = container && (await this.deps.pools.functionInfo(container.functionId).catch(() => undefined));
    if (!container || !info) return;
    const outdated = container.version < info.version;
    if (outdated || info.stopped || this.deps.pools.currentContainers(info).length > minContainersOf(info)) {
      if (!this.waiting(info.id) && !this.busy(container.id)) this.stopAll((c) => c === container, "idle");
    }
  }

  /** Whether a pool has inputs or web requests waiting for a container. */
  private waiting(poolId: string): boolean {
    return this.state.queue.load(poolId).pending > 0 || this.deps.web.load(poolId).pending > 0;
  }

  /** Whether a container holds inputs or serves web requests. */
  private busy(containerId: string): boolean {
    return this.state.queue.ofOwner(containerId).length > 0 || this.deps.web.inFlightOf(containerId) > 0;
  }

  /**
   * A container is gone: what it ran is lost (and runs again), and a pool whose containers cannot start
   * (init failed, or out of memory while starting) fails its waiting calls.
   */
  async stopped(worker: WorkerConn, message: ContainerMessage<"stopped">): Promise<void> {
    const { starting, dispatcher, store, queue, functions } = this.state;
    const { attempts } = this.deps;
    const container = this.state.workers.dropContainer(worker, message.containerId);
    starting.delete(message.containerId);
    dispatcher.release(message.containerId);
    await store.fleet.setContainerState(message.containerId, "stopped", message.reason);
    await this.deps.builds.startEnded(message.containerId);
    const reason = message.message ?? `the container stopped (${message.reason})`;
    attempts.loseAll([...attempts.running(message.inFlight), ...queue.ofOwner(message.containerId)], reason);
    const appId = container && functions.get(container.functionId)?.appId;
    if (appId) this.deps.containerGone(appId);
    if ((message.reason === "init-failed" || message.reason === "start-failed") && container) {
      await attempts.failFunction(
        container.functionId,
        message.message ?? "the container failed to start",
        message.error,
      );
    }
    // Killed for memory before it was ready: every container of the pool would be, so its calls fail.
    if (message.reason === "oom" && container?.state === "starting") {
      const limit = `${container.memoryMiB} MiB`;
      await attempts.failFunction(
        container.functionId,
        message.message ?? `the container ran out of memory (limit ${limit}) while starting: raise \`memory\``,
        undefined,
        "OUT_OF_MEMORY",
      );
    }
    this.deps.requestAutoscale();
  }
}

/**
 * A worker's cold start with the server's part added: `placement` is the time from deciding to start the
 * container (`sinceDecidedMs` ago) until it was ready, less what the worker timed. Unknown after a restart.
 */
function withPlacement(start: ColdStart, sinceDecidedMs: number | undefined): ColdStart {
  if (sinceDecidedMs === undefined) return start;
  const placement = Math.max(0, sinceDecidedMs - coldStartMs(start));
  return { kind: start.kind, phases: { placement, ...start.phases } };
}

/** What a mount of a volume that is not there is refused with (at deploy, and when a container starts). */
export function missingVolume(where: string, name: string, env: string): string {
  return `${where} mounts the volume "${name}", which is not in environment "${env}": create it with \`skiff volume create ${name} --env ${env}\`, or declare it with Volume.fromName("${name}", { createIfMissing: true })`;
}
