import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { cpus, hostname, totalmem } from "node:os";
import { dirname, join } from "node:path";
import {
  batchesOf,
  type Capacity,
  HEARTBEAT_MS,
  type ImageSpec,
  inlineBytes,
  type Link,
  layerRoutes,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
  ServerToWorker,
  socketLink,
  type WorkerMessage,
  type WorkerOutput,
} from "@skiff/protocol";
import type { Logger } from "pino";
import { Client } from "skiff";
import WebSocket from "ws";
import { BundleCache } from "./bundle-cache.js";
import { ContainerSession, type SessionHost } from "./container-session.js";
import { ImageBuilder, imageContainerSpec } from "./images/index.js";
import { LogShipper } from "./log-shipper.js";
import { ensureBaseRootfs, ensureNodeDist } from "./runtime/index.js";
import type { ContainerRuntime } from "./runtime/types.js";
import { onTerminal, resizeTerminal } from "./shell-terminal.js";

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
  connect?: () => ServerLink;
  /** Runs image build steps (default: `runtime`). */
  buildRuntime?: ContainerRuntime;
  /** Disk budget of cached image layers, in MiB (default 20 GiB); least recently used go first. */
  imageCacheMiB?: number;
}

type ServerLink = Link<WorkerMessage, ServerToWorker>;
/** What building an image may need from the server's secret store: a registry login, the steps' secrets. */
type ImageSecrets = Pick<Extract<ServerToWorker, { t: "build" }>, "registryAuth" | "buildSecrets">;

/** A shell this worker runs: its container, its input (once started), and its terminal's resizes. */
interface OpenShell {
  id: string;
  stdin?: NodeJS.WritableStream;
  /** Input that came before the shell started. */
  early: (Uint8Array | "eof")[];
  closed: boolean;
  /** A resize command is running; the size to set after it, if another came meanwhile. */
  resizing?: boolean;
  nextSize?: { rows: number; cols: number };
}

/**
 * Container log lines kept until the server has them: enough for a chatty container (lines come faster than
 * they are acknowledged) and a server restart, bounded so a worker's memory is too.
 */
const MAX_BUFFERED_LOG_LINES = 200_000;
const MAX_BUFFERED_LOG_CHARS = 32 * 1024 * 1024;
const DEFAULT_IMAGE_CACHE_MIB = 20 * 1024;
/** Layers unused this long are removed even within the budget. */
const IMAGE_MAX_AGE_MS = 7 * 24 * 3_600_000;
const IMAGE_GC_EVERY_MS = 10 * 60_000;

/**
 * The agent on each host: connects out to the server, starts and supervises containers, relays inputs
 * and outputs, heartbeats leases, and ships logs. Survives server restarts: it reconnects, re-sends what
 * was not delivered, and keeps its containers.
 */
export class WorkerAgent {
  private link: ServerLink | undefined;
  private readonly sessions = new Map<string, ContainerSession>();
  /** Claims waiting for the server's answer, by request id. */
  private readonly claims = new Map<number, ContainerSession>();
  private outputs: WorkerOutput[] = [];
  /** Output batches sent but not yet recorded by the server, by seq: a server that dies loses them. */
  private readonly unrecorded = new Map<number, WorkerOutput[]>();
  private outputSeq = 1;
  private readonly logs = new LogShipper(MAX_BUFFERED_LOG_LINES, MAX_BUFFERED_LOG_CHARS);
  private outbox: WorkerMessage[] = [];
  private flushScheduled = false;
  private rid = 1;
  private stopped = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly client: Client;
  private readonly bundles: BundleCache;
  private readonly images: ImageBuilder;
  /** Open shells by session id: their container, its stdin once started, and input that came before. */
  private readonly shells = new Map<string, OpenShell>();
  private workerId = "";
  private connectedOnce: (() => void) | undefined;

  constructor(private readonly options: WorkerOptions) {
    this.client = new Client({ serverUrl: options.serverUrl, ...(options.token ? { token: options.token } : {}) });
    this.bundles = new BundleCache(join(options.stateDir, "bundles"), (hash) => this.client.getBlob(hash));
    this.images = new ImageBuilder({
      runtime: options.buildRuntime ?? options.runtime,
      cacheDir: options.cacheDir,
      npmDir: findNpm(),
      fetchBlob: (hash) => this.client.getBlob(hash),
      shared: {
        find: async (key) => {
          const found = await this.client.call(layerRoutes.find, { params: { key } }).catch(() => undefined);
          return found?.digest;
        },
        publish: async (key, bytes) => {
          const digest = await this.client.putBlob(bytes);
          await this.client.call(layerRoutes.publish, { params: { key }, body: { digest } });
        },
      },
      caBundle: [process.env.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt"].find(
        (path) => path && existsSync(path),
      ),
    });
  }

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
    this.workerId = await this.loadWorkerId();
    const heartbeat = setInterval(() => this.heartbeat(), HEARTBEAT_MS);
    heartbeat.unref();
    this.timers.push(heartbeat);
    const collect = setInterval(() => void this.collectImages(), IMAGE_GC_EVERY_MS);
    collect.unref();
    this.timers.push(collect);
    void this.collectImages();
    await new Promise<void>((resolve) => {
      this.connectedOnce = resolve;
      this.connect();
    });
  }

  /** Stops every container and disconnects. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    for (const session of this.sessions.values()) session.stop("requested", "the worker is shutting down");
    await Promise.all([...this.sessions.keys()].map((id) => this.options.runtime.kill(id)));
    const deadline = Date.now() + 10_000;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await this.images.published();
    await this.options.runtime.close?.();
    if (this.options.buildRuntime !== this.options.runtime) await this.options.buildRuntime?.close?.();
    this.flush();
    this.link?.close();
    this.client.close();
  }

  /** Keeps the image cache within its budget (see ImageBuilder.collect). */
  private async collectImages(): Promise<void> {
    const maxBytes = (this.options.imageCacheMiB ?? DEFAULT_IMAGE_CACHE_MIB) * 1024 * 1024;
    try {
      const { removed } = await this.images.collect({
        maxBytes,
        maxAgeMs: IMAGE_MAX_AGE_MS,
        minIdleMs: 3 * IMAGE_GC_EVERY_MS,
      });
      if (removed > 0) this.options.log.info({ removed }, "removed unused image layers");
    } catch (error) {
      this.options.log.warn({ err: error }, "collecting unused image layers failed");
    }
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

  private connect(): void {
    if (this.stopped) return;
    if (this.options.connect) {
      this.attach(this.options.connect());
      return;
    }
    const url = new URL("/v1/worker", this.options.serverUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      maxPayload: MAX_FRAME_BYTES,
      ...(this.options.token ? { headers: { authorization: `Bearer ${this.options.token}` } } : {}),
    });
    socket.binaryType = "nodebuffer";
    let opened = false;
    socket.on("open", () => {
      opened = true;
      this.attach(
        socketLink(socket, (data) => {
          const parsed = ServerToWorker.safeParse(data);
          if (parsed.success) return parsed.data;
          this.options.log.warn({ issues: parsed.error.issues.slice(0, 3) }, "bad message from server");
          return undefined;
        }),
      );
    });
    socket.on("close", () => {
      if (!opened) this.reconnectLater();
    });
    socket.on("error", (error) => this.options.log.debug({ err: error }, "server connection error"));
  }

  private reconnectLater(): void {
    if (!this.stopped) setTimeout(() => this.connect(), 500).unref();
  }

  /** Says hello on a new connection; the server's welcome makes it the one messages go to. */
  private attach(link: ServerLink): void {
    link.onMessage((message) => this.onServer(link, message));
    link.onClose(() => {
      if (this.link === link) this.link = undefined;
      this.reconnectLater();
    });
    link.send({
      t: "hello",
      v: PROTOCOL_VERSION,
      workerId: this.workerId,
      name: this.options.name ?? hostname(),
      runtime: this.options.runtime.name,
      capacity: this.capacity,
      containers: [...this.sessions.keys()],
      held: [
        ...[...this.sessions.values()].flatMap((session) =>
          session.inFlightRefs().map((ref) => ({ ...ref, containerId: session.id })),
        ),
        ...[...this.unrecorded.values(), this.outputs].flat().map((o) => ({ inputId: o.inputId, attempt: o.attempt })),
      ],
    });
  }

  private onServer(link: ServerLink, message: ServerToWorker): void {
    switch (message.t) {
      case "welcome":
        this.link = link;
        // Claims queued for the old connection are void; each session re-sends its own below.
        this.outbox = this.outbox.filter((m) => m.t !== "claim");
        this.claims.clear();
        // Logs first, as in flush: a function's lines should reach its caller before its result does.
        for (const batch of this.logs.unacknowledgedBatches()) link.send({ t: "logs", ...batch });
        for (const [seq, outputs] of this.unrecorded) link.send({ t: "outputs", seq, outputs });
        this.warnDroppedLogs();
        this.options.log.info(
          { server: this.options.serverUrl, runtime: this.options.runtime.name },
          "joined the server",
        );
        for (const session of this.sessions.values()) session.reclaim();
        this.scheduleFlush();
        this.connectedOnce?.();
        this.connectedOnce = undefined;
        return;
      case "start": {
        // A worker that is shutting down starts nothing: stop() has already chosen the containers it kills,
        // and one started now would outlive the worker (its mounts and namespace with it).
        if (this.stopped || this.sessions.has(message.containerId)) return;
        const session = new ContainerSession(message, this.sessionHost());
        this.sessions.set(session.id, session);
        void session.run();
        return;
      }
      case "stop":
        this.sessions.get(message.containerId)?.stop(message.reason === "idle" ? "idle" : "requested", message.reason);
        if (!this.sessions.has(message.containerId)) void this.options.runtime.kill(message.containerId);
        return;
      case "outputs-recorded":
        for (const seq of this.unrecorded.keys()) if (seq <= message.seq) this.unrecorded.delete(seq);
        return;
      case "logs-recorded":
        this.logs.acknowledged(message.seq);
        return;
      case "inputs": {
        const session = this.claims.get(message.rid);
        this.claims.delete(message.rid);
        if (session?.accepting) session.deliver(message);
        else if (message.inputs.length > 0) {
          this.send({ t: "return", inputs: message.inputs.map(({ inputId, attempt }) => ({ inputId, attempt })) });
        }
        return;
      }
      case "cancel":
        for (const session of this.sessions.values()) session.cancel(message.inputs);
        return;
      case "build":
        void this.build(message.rid, message.image, message.export, message);
        return;
      case "shell-open":
        void this.openShell(message);
        return;
      case "shell-resize": {
        const shell = this.shells.get(message.sid);
        if (shell?.stdin) this.resizeShell(shell, message.rows, message.cols);
        return;
      }
      case "shell-input": {
        const shell = this.shells.get(message.sid);
        if (!shell) return;
        // Input typed (or piped) while the image builds waits for the container.
        if (message.data) shell.stdin ? shell.stdin.write(message.data) : shell.early.push(message.data);
        if (message.eof) shell.stdin ? shell.stdin.end() : shell.early.push("eof");
        return;
      }
      case "shell-close": {
        const shell = this.shells.get(message.sid);
        if (shell) shell.closed = true;
        if (shell?.stdin) void this.shellRuntime.kill(shell.id);
        return;
      }
    }
  }

  private sessionHost(): SessionHost {
    return {
      runtime: this.options.runtime,
      log: this.options.log,
      stateDir: this.options.stateDir,
      serverUrl: this.options.serverUrl,
      send: (message) => this.send(message),
      queueOutput: (output) => {
        this.outputs.push(output);
        this.scheduleFlush();
      },
      queueLog: (line) => {
        this.logs.push(line);
        this.scheduleFlush();
      },
      putBlob: (bytes) => this.client.putBlob(bytes),
      mayRead: (token, hash) => new Client({ serverUrl: this.options.serverUrl, token }).hasBlob(hash),
      claim: (session, max) => {
        const rid = this.rid++;
        this.claims.set(rid, session);
        this.send({ t: "claim", rid, containerId: session.id, max });
      },
      prepare: async (start, log) => {
        const [prepared, bundleDir] = await Promise.all([
          this.prepareImage(start.spec.image, log, { secrets: start }),
          this.bundles.ensure(start.bundleHash),
        ]);
        return { ...prepared, bundleDir, runnerDir: this.options.runnerDir };
      },
      ended: (session) => {
        this.sessions.delete(session.id);
        // Its last lines may still be on their way out of its stdout pipe.
        setTimeout(() => this.logs.forget(session.id), 60_000).unref();
      },
    };
  }

  /** The base, the Node build and the image's layers (built if missing) a container of `image` needs. */
  private async prepareImage(
    image: ImageSpec,
    log: (line: string) => void,
    options: { upToFailure?: boolean; secrets?: ImageSecrets } = {},
  ) {
    const process = this.options.runtime.name === "process";
    const { base } = image;
    if (process && (image.layers.length > 0 || base !== "debian-bookworm")) {
      throw new Error("the process runtime cannot build or run images: install runc or runsc and run `make setup`");
    }
    const [rootfs, nodeDir] = await Promise.all([
      process
        ? Promise.resolve("/")
        : base === "debian-bookworm"
          ? ensureBaseRootfs(this.options.cacheDir)
          : this.images.pullBase(base, log, options.secrets?.registryAuth),
      process
        ? Promise.resolve(dirname(dirname(globalThis.process.execPath)))
        : ensureNodeDist(this.options.cacheDir, image.nodeMajor),
    ]);
    const ensure = { upToFailure: options.upToFailure ?? false, secrets: options.secrets?.buildSecrets ?? {} };
    return { rootfs, nodeDir, image: await this.images.ensure(image, { rootfs, nodeDir }, log, ensure) };
  }

  /** An image build the server asked for: lines go back batched per tick, then whether it worked. */
  private async build(rid: number, image: ImageSpec, exportIt: boolean, secrets: ImageSecrets): Promise<void> {
    let lines: string[] = [];
    const flushLines = () => {
      if (lines.length > 0) this.send({ t: "build-log", rid, lines });
      lines = [];
    };
    const log = (line: string) => {
      if (lines.length === 0) setImmediate(flushLines);
      lines.push(line);
    };
    let error: string | undefined;
    let exported: string | undefined;
    try {
      const prepared = await this.prepareImage(image, log, { secrets });
      try {
        if (exportIt) {
          const layout = await this.images.exportLayout(prepared.rootfs, prepared.nodeDir, prepared.image, log);
          exported = await this.client.putBlob(layout);
        }
      } finally {
        prepared.image.release();
      }
    } catch (failure) {
      error = (failure as Error).message;
    }
    flushLines();
    this.send({ t: "build-done", rid, ...(error ? { error } : {}), ...(exported ? { exported } : {}) });
  }

  /** Shells look into images the way build steps make them: on the build runtime. */
  private get shellRuntime(): ContainerRuntime {
    return this.options.buildRuntime ?? this.options.runtime;
  }

  /**
   * Resizes a shell's terminal one command at a time, the latest size last: a window dragged sends sizes
   * in bursts, and two commands run at once could finish in either order, leaving an older size.
   */
  private resizeShell(shell: OpenShell, rows: number, cols: number): void {
    shell.nextSize = { rows, cols };
    if (shell.resizing) return;
    shell.resizing = true;
    void (async () => {
      while (shell.nextSize && !shell.closed) {
        const size = shell.nextSize;
        shell.nextSize = undefined;
        await this.shellRuntime.exec?.(shell.id, resizeTerminal(size.rows, size.cols)).catch(() => {});
      }
      shell.resizing = false;
    })();
  }

  /**
   * A shell in a container of `image` (`skiff shell`): built first if needed, up to a failing step (the
   * shell then opens in the image before it). Its output and exit go back to the server.
   */
  private async openShell(open: Extract<ServerToWorker, { t: "shell-open" }>): Promise<void> {
    const { sid, image, tty } = open;
    const command = tty ? onTerminal(open.command, tty) : open.command;
    const output = (stream: "stdout" | "stderr" | "system", data: Uint8Array) =>
      this.send({ t: "shell-output", sid, stream, data });
    const system = (line: string) => output("system", Buffer.from(`${line}\n`));
    const id = `shell-${sid.slice(0, 8)}`;
    const shell: { id: string; stdin?: NodeJS.WritableStream; early: (Uint8Array | "eof")[]; closed: boolean } = {
      id,
      early: [],
      closed: false,
    };
    this.shells.set(sid, shell);
    try {
      const prepared = await this.prepareImage(image, system, { upToFailure: true, secrets: open });
      try {
        if (shell.closed) throw new Error("the shell was closed before it started");
        const spec = imageContainerSpec(prepared);
        const handle = await this.shellRuntime.start({
          ...spec,
          ...(tty ? { env: { ...spec.env, TERM: tty.term } } : {}),
          id,
          command,
          cpu: 1,
          memoryMiB: 1024,
          network: "private",
          stdin: true,
        });
        if (handle.stdin) {
          shell.stdin = handle.stdin;
          for (const early of shell.early.splice(0)) early === "eof" ? handle.stdin.end() : handle.stdin.write(early);
          handle.stdin.on("error", () => {}); // the command may exit without reading its input
        }
        handle.stdout.on("data", (chunk: Buffer) => output("stdout", chunk));
        handle.stderr.on("data", (chunk: Buffer) => output("stderr", chunk));
        const exit = await handle.exited;
        this.send({ t: "shell-exit", sid, code: exit.exitCode });
      } finally {
        prepared.image.release();
      }
    } catch (error) {
      this.send({ t: "shell-exit", sid, code: null, error: (error as Error).message });
    } finally {
      this.shells.delete(sid);
    }
  }

  /** Says how many log lines were lost while the server was away too long to keep them all. */
  private warnDroppedLogs(): void {
    const dropped = this.logs.takeDropped();
    if (dropped > 0)
      this.options.log.warn(
        { dropped, keptLines: MAX_BUFFERED_LOG_LINES, keptChars: MAX_BUFFERED_LOG_CHARS },
        "container log lines were dropped: more were waiting for the server than the worker keeps",
      );
  }

  private heartbeat(): void {
    const inputs = [...this.sessions.values()].flatMap((session) => session.inFlightRefs());
    if (inputs.length > 0) this.send({ t: "heartbeat", inputs });
  }

  /** Messages wait in order while disconnected; outputs and logs are batched per tick. */
  private send(message: WorkerMessage): void {
    this.outbox.push(message);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    const link = this.link;
    if (!link?.open) return;
    // Logs first: a function's output lines should reach its caller before its result does.
    for (const batch of this.logs.take()) link.send({ t: "logs", ...batch });
    // Outputs before the outbox: a claim sent after an output must not be answered before it is recorded.
    // Each message keeps to BATCH_BYTES of inline results, well below what a WebSocket message may hold.
    for (const outputs of batchesOf(this.outputs, (output) => inlineBytes(output.data))) {
      const seq = this.outputSeq++;
      this.unrecorded.set(seq, outputs);
      link.send({ t: "outputs", seq, outputs });
    }
    this.outputs = [];
    for (const message of this.outbox) link.send(message);
    this.outbox = [];
  }
}

/** The host's npm package directory, mounted into npmInstall build steps; undefined if there is none. */
function findNpm(): string | undefined {
  const candidates = [
    join(dirname(dirname(process.execPath)), "lib", "node_modules", "npm"),
    "/usr/lib/node_modules/npm",
    "/usr/local/lib/node_modules/npm",
    "/usr/share/nodejs/npm",
  ];
  return candidates.find((dir) => existsSync(join(dir, "bin", "npm-cli.js")));
}
