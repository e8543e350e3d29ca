import { randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, hostname, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Capacity, LocalWebRelay, ServerToWorker } from "@skiff/protocol";
import type { Logger } from "pino";
import { Client } from "skiff/plumbing";
import { BundleCache } from "./bundle-cache.js";
import { ContainerSession, type SessionHost } from "./container-session.js";
import { ImageService } from "./image-service.js";
import type { ContainerRuntime } from "./runtime/types.js";
import { type ServerConnection, ServerLink } from "./server-link.js";
import { Shells } from "./shells.js";
import { describeHost, SnapshotStore } from "./snapshots.js";
import { SpareRunners } from "./spares.js";
import { cleanupStaleRcloneMounts } from "./volumes/rclone-mount.js";
import { WebRelay, type WebRelayAddress } from "./web-relay.js";

/** How a worker is set up: its server, its runtimes, its directories and its limits. */
export interface WorkerOptions {
  serverUrl: string;
  runtime: ContainerRuntime;
  log: Logger;
  /** Per-host state: bundles, container sockets, the worker's id. */
  stateDir: string;
  /** Shared caches: base rootfs, Node builds. */
  cacheDir: string;
  /** Directory holding runner.mjs. */
  runnerDir: string;
  name?: string;
  capacity?: Partial<Capacity>;
  token?: string;
  /** Connects to a server in this process instead of over a WebSocket to `serverUrl`. */
  connect?: () => ServerConnection;
  /** Runs image build steps (default: `runtime`). */
  buildRuntime?: ContainerRuntime;
  /** Disk budget of cached image layers, in MiB (default 20 GiB); least recently used go first. */
  imageCacheMiB?: number;
  /** How many recently used (image, cpu, memory) keep a spare runner booted (default 0: none). */
  spareRunners?: number;
  /** Where the web relay listens for the server's web requests (default 127.0.0.1, an ephemeral port). */
  webRelay?: { host?: string; port?: number };
}

/**
 * The agent on each host: connects out to the server, starts and supervises containers, relays inputs
 * and outputs, heartbeats leases, and ships logs. Survives server restarts: it reconnects, re-sends what
 * was not delivered, and keeps its containers. Its parts: the server link (ServerLink), the image
 * service (ImageService), the shells (Shells) and one ContainerSession per container, which it hosts.
 */
export class WorkerAgent {
  private readonly link: ServerLink;
  private readonly sessions = new Map<string, ContainerSession>();
  /** Claims waiting for the server's answer, by request id. */
  private readonly claims = new Map<number, ContainerSession>();
  private rid = 1;
  private stopped = false;
  /** The container sessions' runs, until each has cleaned up after its container. */
  private readonly running = new Set<Promise<void>>();
  private readonly client: Client;
  private readonly bundles: BundleCache;
  private readonly images: ImageService;
  private readonly shells: Shells;
  private readonly webRelay: WebRelay;
  /** Memory snapshots, where the runtime can take them. */
  private readonly snapshots: SnapshotStore | undefined;
  /** Runners booted ahead, where the runtime has containers. */
  private readonly spares: SpareRunners | undefined;
  private webRelayAddress: WebRelayAddress | undefined;
  private workerId = "";

  constructor(private readonly options: WorkerOptions) {
    this.client = new Client({ serverUrl: options.serverUrl, ...(options.token ? { token: options.token } : {}) });
    this.bundles = new BundleCache(join(options.stateDir, "bundles"), (hash) => this.client.getBlob(hash));
    this.link = new ServerLink({
      serverUrl: options.serverUrl,
      ...(options.token ? { token: options.token } : {}),
      ...(options.connect ? { connect: options.connect } : {}),
      log: options.log,
      identity: () => ({
        workerId: this.workerId,
        name: options.name ?? hostname(),
        runtime: options.runtime.name,
        capacity: this.capacity,
        ...(this.webRelayAddress ? { webRelay: this.webRelayAddress } : {}),
      }),
      containers: () => this.sessions.values(),
      onMessage: (message) => this.onServer(message),
      onWelcome: () => {
        this.claims.clear();
        for (const session of this.sessions.values()) session.reclaim();
      },
    });
    const send = this.link.send.bind(this.link);
    // Shells look into images the way build steps make them: on the build runtime.
    const buildRuntime = options.buildRuntime ?? options.runtime;
    this.images = new ImageService({
      runtime: options.runtime.name,
      buildRuntime,
      cacheDir: options.cacheDir,
      imageCacheMiB: options.imageCacheMiB,
      client: this.client,
      volumes: { serverUrl: options.serverUrl, mountsDir: join(options.stateDir, "mounts") },
      log: options.log,
      send,
    });
    this.shells = new Shells({ runtime: buildRuntime, images: this.images, send });
    const { runtime } = options;
    this.snapshots =
      runtime.checkpoint && runtime.version
        ? new SnapshotStore(join(options.stateDir, "snapshots"), () => describeHost(() => runtime.version!()))
        : undefined;
    this.spares =
      runtime.name !== "process" && (options.spareRunners ?? 0) > 0
        ? new SpareRunners({
            runtime,
            dir: join(options.stateDir, "spares"),
            log: options.log,
            keys: options.spareRunners ?? 0,
          })
        : undefined;
    this.webRelay = new WebRelay({
      ...options.webRelay,
      log: options.log,
      target: (containerId) => this.sessions.get(containerId),
    });
  }

  /**
   * The web relay for a server in this process (`skiff up`): its URL, as the hello tells it, and direct
   * access to containers' web sockets. Undefined before `start`.
   */
  get localWebRelay(): LocalWebRelay | undefined {
    const address = this.webRelayAddress;
    if (!address) return undefined;
    return {
      url: address.url,
      open: (containerId) => this.webRelay.open(containerId),
      onStopping: (listener) => this.webRelay.onStopping(listener),
    };
  }

  /** What this worker offers the server to place containers in: CPU shares and memory. */
  get capacity(): Capacity {
    return {
      // CPU is a share, not a reservation: oversubscribe so small functions pack densely.
      cpu: this.options.capacity?.cpu ?? cpus().length * 4,
      memoryMiB: this.options.capacity?.memoryMiB ?? Math.floor((totalmem() / 1024 / 1024) * 0.8),
    };
  }

  /** Cleans up after an earlier run, then connects; resolves once the server has welcomed it. */
  async start(): Promise<void> {
    await this.options.runtime.cleanupStale();
    if (this.options.buildRuntime && this.options.buildRuntime !== this.options.runtime)
      await this.options.buildRuntime.cleanupStale();
    // Its containers are gone now: the volume mounts they held can go.
    await cleanupStaleRcloneMounts(join(this.options.stateDir, "mounts"));
    await this.snapshots?.cleanup();
    await this.spares?.cleanup();
    this.workerId = await this.loadWorkerId();
    this.images.startCollecting();
    // The hello carries the relay's address: it listens first.
    this.webRelayAddress = await this.webRelay.start();
    await this.link.start();
  }

  /** Stops every container and disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.link.shutdown();
    this.images.stopCollecting();
    for (const session of this.sessions.values()) session.stop("requested", "the worker is shutting down");
    await this.spares?.close();
    await Promise.all([...this.sessions.values()].map((session) => this.options.runtime.kill(session.runtimeId)));
    // Each run ends after its container's folder is removed (a session leaves `sessions` before that).
    await Promise.race([Promise.all(this.running), sleep(10_000, undefined, { ref: false })]);
    await this.images.published();
    await this.webRelay.close();
    await this.options.runtime.close?.();
    if (this.options.buildRuntime !== this.options.runtime) await this.options.buildRuntime?.close?.();
    this.link.close();
    this.client.close();
  }

  private async loadWorkerId(): Promise<string> {
    const path = join(this.options.stateDir, "worker-id");
    try {
      return (await readFile(path, "utf8")).trim();
    } catch {
      const id = `wk-${randomUUID()}`;
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, id);
      return id;
    }
  }

  /** Routes what the server asks for (all but the link's own messages) to the sessions, images and shells. */
  private onServer(message: ServerToWorker): void {
    switch (message.t) {
      case "start": {
        // A worker that is shutting down starts nothing: stop() has already chosen the containers it kills,
        // and one started now would outlive the worker (its mounts and namespace with it).
        if (this.stopped || this.sessions.has(message.containerId)) return;
        const session = new ContainerSession(message, this.sessionHost());
        this.sessions.set(session.id, session);
        const running = session.run();
        this.running.add(running);
        void running.finally(() => this.running.delete(running));
        return;
      }
      case "stop":
        this.sessions.get(message.containerId)?.stop(message.reason === "idle" ? "idle" : "requested", message.reason);
        if (!this.sessions.has(message.containerId)) void this.options.runtime.kill(message.containerId);
        return;
      case "inputs": {
        const session = this.claims.get(message.rid);
        this.claims.delete(message.rid);
        if (session?.accepting) session.deliver(message);
        else if (message.inputs.length > 0) {
          this.link.send({
            t: "return",
            inputs: message.inputs.map(({ inputId, attempt }) => ({ inputId, attempt })),
          });
        }
        return;
      }
      case "cancel":
        for (const session of this.sessions.values()) session.cancel(message.inputs);
        return;
      case "credit":
        for (const session of this.sessions.values()) session.credit(message.credits);
        return;
      case "build":
        void this.images.build(message);
        return;
      case "shell-open":
        void this.shells.start(message);
        return;
      case "shell-resize":
        this.shells.resize(message);
        return;
      case "shell-input":
        this.shells.input(message);
        return;
      case "shell-close":
        this.shells.close(message);
        return;
    }
  }

  private sessionHost(): SessionHost {
    return {
      runtime: this.options.runtime,
      log: this.options.log,
      stateDir: this.options.stateDir,
      ...(this.snapshots ? { snapshots: this.snapshots } : {}),
      ...(this.spares ? { spares: this.spares } : {}),
      serverUrl: this.options.serverUrl,
      send: (message) => this.link.send(message),
      queueOutput: (output) => this.link.queueOutput(output),
      queueItem: (item) => this.link.queueItem(item),
      queueLog: (line) => this.link.queueLog(line),
      putBlob: (bytes) => this.client.putBlob(bytes),
      mayRead: (token, hash) => new Client({ serverUrl: this.options.serverUrl, token }).hasBlob(hash),
      claim: (session, max) => {
        const rid = this.rid++;
        this.claims.set(rid, session);
        this.link.send({ t: "claim", rid, containerId: session.id, max });
      },
      prepare: async (start, log) => {
        const [prepared, bundleDir] = await Promise.all([
          this.images.prepare(start.spec.image, log, { secrets: start }),
          this.bundles.ensure(start.bundleHash),
        ]);
        return { ...prepared, bundleDir, runnerDir: this.options.runnerDir };
      },
      stopping: (session) => this.webRelay.drain(session.id),
      ended: (session) => {
        this.sessions.delete(session.id);
        this.webRelay.forget(session.id);
        // Its last lines may still be on their way out of its stdout pipe.
        setTimeout(() => this.link.forgetLogs(session.id), 60_000).unref();
      },
    };
  }
}
