import { chmod, mkdir, rm, stat, writeFile } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type AttemptRef,
  attemptKey,
  attemptRefOf,
  type ClaimedInput,
  decodeMessage,
  type ErrorCode,
  encodeMessage,
  FrameReader,
  type FunctionSpec,
  failurePayload,
  type GeneratorCredit,
  INLINE_PAYLOAD_LIMIT,
  type LogLine,
  type Payload,
  parseRunnerMessage,
  RESTORED_MARK,
  type RunnerData,
  type RunnerInput,
  type RunnerMessage,
  runnerEnvironment,
  type ServerToWorker,
  type WorkerItem,
  type WorkerMessage,
  type WorkerOutput,
  type WorkerToRunner,
  writeFrames,
} from "@skiff/protocol";
import type { Logger } from "pino";
import { relayTo } from "./api-relay.js";
import { type BuiltImage, ImageBuildError, imageContainerSpec } from "./images/index.js";
import { forEachLine } from "./line-splitter.js";
import { listen } from "./listen.js";
import { redactor } from "./redact.js";
import type { ContainerExit, ContainerHandle, ContainerRuntime, ContainerSpec, Mount } from "./runtime/types.js";
import type { SnapshotStore, SnapshotTaking } from "./snapshots.js";
import { SPARE_SOCKET, type Spare, type SpareRunners } from "./spares.js";
import { StartTimings } from "./start-timings.js";
import { ContainerMounts } from "./volumes/container-mounts.js";
import type { WebTarget } from "./web-relay.js";

type StartMessage = Extract<ServerToWorker, { t: "start" }>;
type StopReason = Extract<WorkerMessage, { t: "stopped" }>["reason"];

/** What a session needs from its agent. */
export interface SessionHost {
  runtime: ContainerRuntime;
  log: Logger;
  send(message: WorkerMessage): void;
  queueOutput(output: WorkerOutput): void;
  /** Relays a value a generator yielded; it goes before outputs queued after it. */
  queueItem(item: WorkerItem): void;
  queueLog(line: LogLine): void;
  /** Sends a claim for this session; the answer comes back through `deliver`. */
  claim(session: ContainerSession, max: number): void;
  putBlob(bytes: Uint8Array): Promise<string>;
  /** Whether a blob is stored and `token`'s workspace may read it (the server's check, through a HEAD). */
  mayRead(token: string, hash: string): Promise<boolean>;
  /**
   * Paths on this host (the runner program, the user's bundle, the Node build, the base rootfs) and the
   * function's image, built first if needed; `log` gets the build's lines.
   */
  prepare(
    start: StartMessage,
    log: (line: string) => void,
  ): Promise<{ runnerDir: string; bundleDir: string; nodeDir: string; rootfs: string; image: BuiltImage }>;
  stateDir: string;
  /** Where memory snapshots are kept, when the runtime can take them. */
  snapshots?: SnapshotStore;
  /** Runners booted ahead, when the worker keeps them. */
  spares?: SpareRunners;
  /** The server's URL: the container's api.sock relays to it. */
  serverUrl: string;
  /** It takes no more inputs or web requests (it was asked to stop, or timed out starting). */
  stopping(session: ContainerSession): void;
  ended(session: ContainerSession): void;
}

interface InFlight {
  input: ClaimedInput;
  timer: NodeJS.Timeout;
  sentAt: number;
}

/** The runner program, inside the container. */
const RUNNER_PROGRAM = "/.skiff/runner/runner.mjs";
/** How long `exit` hooks may run at shutdown. */
const EXIT_GRACE_MS = 30_000;
const FRAGMENT = "in the container";
/**
 * How long an exited container's output may still take to be read to its end: a process it left behind could
 * hold its pipes open forever.
 */
const OUTPUT_END_WAIT_MS = 5_000;
/**
 * Inputs shorter than this (on average) are claimed a turn ahead: the runner's next inputs wait here, so
 * finishing a turn costs one hop to this process instead of one to the server and back.
 */
const PREFETCH_BELOW_MS = 20;
/** How long a cancelled generator has to stop (it is asked to `return()`) before its container is killed. */
const GENERATOR_STOP_MS = 5_000;

/**
 * One container from start to exit: starts it, serves its runner over a Unix socket, relays claims and
 * outputs, enforces timeouts and the idle scaledown window, and reports how it ended. A web function's
 * runner serves HTTP on its own socket instead of claiming inputs: the worker's web relay sends it
 * requests (WebTarget) and the session counts them as activity.
 */
export class ContainerSession implements WebTarget {
  readonly id: string;
  /** The host path of the socket a web function's runner serves HTTP on (in its socket directory). */
  readonly webSocketPath: string | undefined;
  private server: Server | undefined;
  private apiRelay: Server | undefined;
  private runner: Socket | undefined;
  private readonly inFlight = new Map<string, InFlight>();
  /** A generator attempt's values being relayed (a large one is put as a blob first), by input: in order, and before its output. */
  private readonly relaying = new Map<string, Promise<void>>();
  /** The claim we sent, if the server has not answered it yet. */
  private pendingClaim: { max: number } | undefined;
  /** How many inputs the runner asked for and has not been sent. */
  private runnerWants = 0;
  /** Inputs leased to this container that the runner has not asked for yet. */
  private readonly buffered: ClaimedInput[] = [];
  /** Moving average of how long inputs ran, in ms; undefined until one has finished. */
  private averageRunMs: number | undefined;
  private lastActive = Date.now();
  /** Web requests (and upgraded connections) the relay has open to this container. */
  private webRequests = 0;
  /** The runner's connection closed: its process ended, whatever the runtime says yet. */
  private runnerGone = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private startupTimer: NodeJS.Timeout | undefined;
  /** Hides the values of the function's secrets (and its token) in log lines. */
  private readonly redact: (line: string) => string;
  private stopReason: StopReason | undefined;
  private stopMessage: string | undefined;
  private timedOut: string | undefined;
  private initError: Uint8Array | undefined;
  private ready = false;
  /** The function's volumes and buckets, mounted on this host and bound into the container. */
  private mounts: ContainerMounts | undefined;
  /** The output of the containers this session ran (one, or the one snapshotted and the one restored). */
  private readonly outputs: Promise<unknown>[] = [];
  /** Set while a snapshot is taken: the runner said `snapshot-ready` and closed its connection. */
  private snapshotReady: (() => void) | undefined;
  /** Set while the container is restored: the runner connected again. */
  private runnerConnected: (() => void) | undefined;
  /** The runner said `snapshot-ready`: its connection's close is not its end. */
  private runnerSnapshotting = false;
  /** How long each phase of its start took, for `started`. */
  private readonly timings = new StartTimings();
  /** Set when it took a spare runner: that container's id and socket directory. */
  private runtimeContainerId: string | undefined;
  private spareSocketDir: string | undefined;

  constructor(
    private readonly start: StartMessage,
    private readonly host: SessionHost,
  ) {
    this.id = start.containerId;
    this.webSocketPath = start.spec.web ? join(this.socketDir, "web.sock") : undefined;
    const credentials = Object.values(start.bucketCredentials).flatMap((c) => Object.values(c) as string[]);
    this.redact = redactor([...Object.values(start.secrets), start.token, ...credentials]);
  }

  /** Starts the container; never throws: failures are reported to the server as a stopped container. */
  async run(): Promise<void> {
    let dir = this.socketDir;
    let image: BuiltImage | undefined;
    let spare: Spare | undefined;
    try {
      const paths = await this.host.prepare(this.start, (line) => this.logLine("system", line));
      this.timings.lap("prepare");
      image = paths.image;
      // A spare runner booted ahead takes this container's place: its socket directory is this one's.
      spare = await this.takeSpare(paths);
      if (spare) {
        this.spareSocketDir = spare.sockDir;
        dir = spare.sockDir;
      }
      await mkdir(dir, { recursive: true });
      this.server = await listen(join(dir, "runner.sock"), (socket) => this.serveRunner(socket));
      this.apiRelay = await listen(join(dir, "api.sock"), relayTo(this.host.serverUrl));
      // A function running as another user (USER) must still reach its sockets; the directory is this
      // container's alone.
      if (paths.image.user) {
        await chmod(join(dir, "runner.sock"), 0o777);
        await chmod(join(dir, "api.sock"), 0o777);
        // A web function's runner makes its own socket here.
        if (this.webSocketPath) await chmod(dir, 0o777);
      }
      const { spec } = this.start;
      if (spec.volumes.length > 0) {
        await this.mountVolumes();
        this.timings.lap("mounts");
      }
      const fromImage = imageContainerSpec(paths, {
        ...this.start.secrets,
        ...this.start.env,
        ...runnerEnvironment({
          SKIFF_SOCKET: "/.skiff/sock/runner.sock",
          SKIFF_API_SOCKET: "/.skiff/sock/api.sock",
          SKIFF_FUNCTION_IDS: this.start.functionIds,
          SKIFF_APP_ID: this.start.appId,
          SKIFF_ENV: this.start.appEnv,
          SKIFF_BUNDLE: "/.skiff/bundle/bundle.mjs",
          SKIFF_FUNCTION: spec.name,
          SKIFF_MAX_INPUTS: spec.maxInputs,
          SKIFF_BATCH: spec.batched,
          SKIFF_CONTAINER_ID: this.id,
          SKIFF_WEB_SOCKET: this.webSocketPath ? "/.skiff/sock/web.sock" : undefined,
        }),
      });
      const mounts: Mount[] = [
        { source: paths.runnerDir, target: "/.skiff/runner", readonly: true },
        { source: paths.bundleDir, target: "/.skiff/bundle", readonly: true },
        { source: dir, target: "/.skiff/sock", readonly: false },
        ...fromImage.mounts,
        ...(this.mounts?.runtimeMounts ?? []),
      ];
      const containerSpec: ContainerSpec = {
        ...fromImage,
        id: this.id,
        command: ["/.skiff/node/bin/node", RUNNER_PROGRAM],
        mounts,
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        network: "private",
      };
      // From here, also while a snapshot is taken: its snap hooks count as the container's start.
      this.startupTimer = setTimeout(() => {
        if (this.ready || this.stopReason) return;
        this.stopReason = "init-failed";
        this.stopMessage = notReadyMessage(spec);
        // In the app's logs too, after the container's last lines: a web request that waited for it
        // only got a 503.
        this.logLine("system", this.stopMessage);
        void this.host.runtime.kill(this.runtimeId);
      }, spec.startupTimeoutMs);
      this.startupTimer.unref();
      const handle = spare
        ? await this.adopt(spare, containerSpec.env, paths.bundleDir)
        : await this.startContainer(containerSpec, paths.runnerDir);
      // Asked to stop while it was starting (waiting for a spare, an image, a snapshot): it ends now.
      if (this.stopReason && !this.runner) void this.host.runtime.kill(this.runtimeId);
      this.idleTimer = setInterval(() => this.checkIdle(), 1000);
      this.idleTimer.unref();
      // Its process has ended: reported at once, while the runtime releases what it held (overlay, network).
      const exit = await (handle.ended ?? handle.exited);
      // `stopped` tells the server this container's lines are all sent (see Hub.endLogs): its last lines first.
      await Promise.race([Promise.all(this.outputs), sleep(OUTPUT_END_WAIT_MS, undefined, { ref: false })]);
      // Before `stopped`: the container's token (which commits) is good until then, and a caller told the
      // container is gone may read what it committed.
      await this.unmountVolumes(exit.exitCode === 0 && !exit.oomKilled);
      this.finish(exit);
      await handle.exited.catch((error: unknown) =>
        this.host.log.error({ err: error, container: this.id }, "releasing the container failed"),
      );
    } catch (error) {
      this.host.log.error({ err: error, container: this.id }, "container failed to start");
      this.stopReason = "start-failed";
      this.stopMessage =
        error instanceof ImageBuildError
          ? `the function's image could not be built: ${error.message}\nto look inside, open a shell in the image before that step: skiff shell --image FILE::${this.start.spec.name}`
          : `the container could not start: ${(error as Error).message}`;
      await this.unmountVolumes(false);
      this.finish({ exitCode: null, signal: null, oomKilled: false });
    } finally {
      image?.release();
      if (this.idleTimer) clearInterval(this.idleTimer);
      clearTimeout(this.startupTimer);
      this.server?.close();
      this.apiRelay?.close();
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      await spare?.release();
    }
  }

  /**
   * A spare runner for this container, when the worker has one ready for its image, cpu and memory. Only plain
   * functions on the base image take one: a spare's mounts and user are fixed when it boots (no volumes, no
   * image layers or files, no USER), and Node has read NODE_OPTIONS by then. One still booting is waited for.
   * Taking one (or finding none) has the worker boot the next.
   */
  private async takeSpare(paths: {
    runnerDir: string;
    nodeDir: string;
    rootfs: string;
    image: BuiltImage;
  }): Promise<Spare | undefined> {
    const { spares } = this.host;
    const { spec } = this.start;
    const { image } = paths;
    const env = { ...this.start.secrets, ...this.start.env };
    if (!spares || spec.web || spec.volumes.length > 0 || spec.memorySnapshot) return undefined;
    if (image.layers.length > 0 || image.mounts.length > 0 || image.user || "NODE_OPTIONS" in env) return undefined;
    const key = JSON.stringify([
      paths.rootfs,
      paths.nodeDir,
      paths.runnerDir,
      image.env,
      image.cwd,
      spec.cpu,
      spec.memoryMiB,
    ]);
    return spares.take(key, (id, dirs) => {
      const base = imageContainerSpec(paths, { SKIFF_SPARE_SOCKET: `/.skiff/sock/${SPARE_SOCKET}` });
      return {
        ...base,
        id,
        command: ["/.skiff/node/bin/node", RUNNER_PROGRAM],
        mounts: [
          { source: paths.runnerDir, target: "/.skiff/runner", readonly: true },
          { source: dirs.bundleDir, target: "/.skiff/bundle", readonly: true },
          { source: dirs.sockDir, target: "/.skiff/sock", readonly: false },
          ...base.mounts,
        ],
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        network: "private",
      };
    });
  }

  /** Hands the spare this container's code and environment: it is this container from now on. */
  private async adopt(spare: Spare, env: Record<string, string>, bundleDir: string): Promise<ContainerHandle> {
    this.timings.startsAs("spare");
    this.runtimeContainerId = spare.id;
    this.follow(spare.handle);
    await spare.assign(bundleDir, env);
    return spare.handle;
  }

  /**
   * Boots the container, or restores it from its function's memory snapshot on this worker: the first start of
   * a snapshot's key boots to take it (others wait), later ones restore it. A snapshot that cannot be taken
   * leaves its function booting; one that fails to restore is dropped and taken again.
   */
  private async startContainer(spec: ContainerSpec, runnerDir: string): Promise<ContainerHandle> {
    const { snapshots } = this.host;
    if (!this.start.spec.memorySnapshot) return this.boot(spec);
    if (!snapshots) {
      this.logLine(
        "system",
        `memory snapshots need the gvisor runtime, and this worker runs ${this.host.runtime.name}: the container boots, and its snap hooks run in it`,
      );
      return this.boot(spec);
    }
    const runner = await stat(join(runnerDir, "runner.mjs")).catch(() => undefined);
    const extra = { spec: this.start.spec, bundle: this.start.bundleHash, runner: [runner?.size, runner?.mtimeMs] };
    const key = await snapshots.keyOf(spec, extra, [this.socketDir, this.mountsDir]);
    for (let attempt = 0; attempt < 2; attempt++) {
      const found = await snapshots.lookup(key);
      if (found.state === "failed") return this.boot(spec);
      const restored =
        found.state === "take" ? await this.takeSnapshot(spec, found.taking) : await this.restore(spec, found.dir);
      if ("handle" in restored) return restored.handle;
      // The restore failed before the runner came back: this snapshot is bad.
      this.logLine(
        "system",
        `restoring the memory snapshot failed (${restored.problem}): it is dropped and taken again`,
      );
      await snapshots.drop(key);
    }
    return this.boot(spec);
  }

  private async boot(spec: ContainerSpec): Promise<ContainerHandle> {
    this.timings.startsAs("booted");
    const handle = await this.host.runtime.start(spec);
    this.timings.lap("create");
    this.follow(handle);
    return handle;
  }

  /**
   * Boots the container to be snapshotted: once the runner has loaded the code (and run snap hooks), it is
   * checkpointed into `taking.dir`, and then restored from there as any later container is.
   */
  private async takeSnapshot(
    spec: ContainerSpec,
    taking: SnapshotTaking,
  ): Promise<{ handle: ContainerHandle } | { problem: string }> {
    const began = Date.now();
    const ready = new Promise<void>((resolve) => (this.snapshotReady = resolve));
    const handle = await this.host.runtime
      .start({ ...spec, env: { ...spec.env, SKIFF_SNAPSHOT: "1" }, checkpointable: true })
      .catch(async (error: Error) => {
        await taking.failed(error.message, false);
        throw error;
      });
    this.timings.lap("create");
    const output = this.follow(handle);
    if (!(await Promise.race([ready.then(() => true), handle.exited.then(() => false)]))) {
      // A snap hook threw, or the startupTimeout passed: no snapshot is kept, and the start fails as a boot's would.
      await taking.failed("its container ended before the snapshot", false);
      return { handle };
    }
    // Boot, load and snap hooks: the part of this start that restored containers skip.
    this.timings.lap("snapshot");
    try {
      await checkpointSoon(() => this.host.runtime.checkpoint!(this.id, taking.dir));
    } catch (error) {
      const reason = (error as Error).message;
      const hooks = this.start.spec.cls?.snapEnter ?? [];
      const after = hooks.length > 0 ? `its snap hooks (${hooks.join(", ")})` : "its module";
      this.logLine(
        "system",
        `the memory snapshot could not be taken after ${after} ran (${reason}): this function's containers on this worker boot instead. What cannot be saved: a Unix socket or host file left open outside the container's own files, e.g. by ${hooks.length > 0 ? hooks.join(" or ") : "the module's top-level code"}; open such things in a snap: false hook`,
      );
      await taking.failed(reason, true);
      // It runs on as if restored: its runner connects again and runs the other enter hooks.
      await writeFile(join(this.socketDir, RESTORED_MARK), "");
      return { handle };
    }
    await handle.exited;
    await Promise.race([output, sleep(OUTPUT_END_WAIT_MS, undefined, { ref: false })]);
    const dir = await taking.done();
    this.timings.lap("checkpoint");
    const mib = Math.round((await this.host.snapshots!.sizeOf(dir)) / 2 ** 20);
    this.logLine(
      "system",
      `memory snapshot taken in ${Date.now() - began} ms (${mib} MiB): this function's next containers on this worker restore it`,
    );
    return this.restore(spec, dir);
  }

  /**
   * Restores the container from a snapshot. Its output is held until the runner has connected again: a restore
   * that fails before then writes runsc's own errors there, which go into the problem instead of the app's logs.
   */
  private async restore(spec: ContainerSpec, dir: string): Promise<{ handle: ContainerHandle } | { problem: string }> {
    const mark = join(this.socketDir, RESTORED_MARK);
    await writeFile(mark, "");
    this.timings.startsAs("restored");
    const connected = new Promise<void>((resolve) => (this.runnerConnected = resolve));
    let handle: ContainerHandle;
    try {
      handle = await this.host.runtime.start({ ...spec, checkpointable: true, restoreFrom: dir });
    } catch (error) {
      await rm(mark, { force: true });
      return { problem: (error as Error).message };
    }
    const held: string[] = [];
    let holding = true;
    const line = (stream: "stdout" | "stderr") => (text: string) => {
      if (holding) held.push(text);
      else this.logLine(stream, text);
    };
    const output = Promise.all([
      forEachLine(handle.stdout, line("stdout")),
      forEachLine(handle.stderr, line("stderr")),
    ]);
    this.outputs.push(output);
    const ok = await Promise.race([connected.then(() => true), handle.exited.then(() => false)]);
    if (ok) {
      holding = false;
      for (const text of held.splice(0)) this.logLine("stderr", text);
      return { handle };
    }
    await Promise.race([output, sleep(OUTPUT_END_WAIT_MS, undefined, { ref: false })]);
    await rm(mark, { force: true });
    const exit = await handle.exited;
    const problem = held.find((text) => text.trim() !== "")?.trim() ?? `exit code ${exit.exitCode ?? exit.signal}`;
    return { problem };
  }

  /** Sends a container's output to the app's logs; the session waits for it to end before it reports `stopped`. */
  private follow(handle: ContainerHandle): Promise<unknown> {
    const output = Promise.all([
      forEachLine(handle.stdout, (line) => this.logLine("stdout", line)),
      forEachLine(handle.stderr, (line) => this.logLine("stderr", line)),
    ]);
    this.outputs.push(output);
    return output;
  }

  /** Where this container's volumes and buckets are mounted on this host. */
  private get mountsDir(): string {
    return join(this.host.stateDir, "mounts", this.id);
  }

  /** Mounts the function's volumes and buckets on this host, to bind into the container. */
  private async mountVolumes(): Promise<void> {
    if (this.host.runtime.name === "process") {
      throw new Error(
        "volumes are mounted into containers, and this worker runs functions as plain processes: use the gvisor or runc runtime",
      );
    }
    this.mounts = await ContainerMounts.mount({
      mounts: this.start.spec.volumes,
      env: this.start.appEnv,
      serverUrl: this.host.serverUrl,
      token: this.start.token,
      bucketCredentials: this.start.bucketCredentials,
      dir: this.mountsDir,
      warn: (line) => this.logLine("system", line),
    });
  }

  /** Unmounts them; after a clean exit, volumes commit first (what fails is said in the app's logs). */
  private async unmountVolumes(clean: boolean): Promise<void> {
    const mounts = this.mounts;
    this.mounts = undefined;
    for (const problem of (await mounts?.close({ commit: clean })) ?? []) this.logLine("system", problem);
  }

  /** False once the container is stopping: inputs that still arrive go back to the queue. */
  get accepting(): boolean {
    return this.stopReason === undefined;
  }

  /** A web function whose runner listens (it said `ready`) and that is not stopping. */
  get acceptsRequests(): boolean {
    return this.webSocketPath !== undefined && this.ready && this.stopReason === undefined && !this.runnerGone;
  }

  beginRequest(): void {
    this.webRequests++;
    this.lastActive = Date.now();
  }

  endRequest(): void {
    this.webRequests--;
    this.lastActive = Date.now();
  }

  /** The container's socket directory on this host, mounted at /.skiff/sock (a spare's, when it took one). */
  private get socketDir(): string {
    return this.spareSocketDir ?? join(this.host.stateDir, "containers", this.id);
  }

  /** The runtime's id of its container: its own, or the spare runner's it took. */
  get runtimeId(): string {
    return this.runtimeContainerId ?? this.id;
  }

  /** Asks the runner to finish its inputs and exit; kills the container after a grace period. */
  stop(reason: StopReason, message?: string): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    this.stopMessage = message;
    if (this.pendingClaim) {
      this.pendingClaim = undefined;
      this.host.send({ t: "unclaim", containerId: this.id });
    }
    this.returnBuffered();
    this.host.stopping(this);
    this.sendRunner({ t: "shutdown" });
    // The runner finishes its inputs and web requests (each within its timeout), then runs `exit` hooks.
    const grace = this.busy ? this.start.spec.timeoutMs + EXIT_GRACE_MS : EXIT_GRACE_MS;
    const kill = setTimeout(() => void this.host.runtime.kill(this.runtimeId), this.runner ? grace : 0);
    kill.unref();
  }

  /** Kills the container now, e.g. because an input ran past its timeout or was cancelled. */
  kill(reason: StopReason, message: string): void {
    this.stopReason ??= reason;
    this.stopMessage ??= message;
    void this.host.runtime.kill(this.runtimeId);
  }

  /** Kills the container if it runs any of these attempts (a cancelled call); drops those not started. */
  cancel(inputs: AttemptRef[]): void {
    const cancelled = new Set(inputs.map(attemptKey));
    for (let i = this.buffered.length - 1; i >= 0; i--) {
      if (cancelled.has(attemptKey(this.buffered[i]!))) this.buffered.splice(i, 1);
    }
    const running = inputs.filter((ref) => this.inFlight.get(ref.inputId)?.input.attempt === ref.attempt);
    // A generator is asked to stop (its `finally` blocks run, the container stays); one that does not stop
    // within GENERATOR_STOP_MS is killed with its container, as any other cancelled input.
    const generators = running.filter((ref) => this.inFlight.get(ref.inputId)?.input.gen);
    for (const ref of generators) {
      this.sendRunner({ t: "cancel", ...attemptRefOf(ref) });
      setTimeout(() => {
        if (this.inFlight.get(ref.inputId)?.input.attempt === ref.attempt)
          this.kill("requested", "its generator did not stop when cancelled");
      }, GENERATOR_STOP_MS).unref();
    }
    if (running.length > generators.length) this.kill("requested", "its input was cancelled");
  }

  /** Generator attempts whose callers took more values: the runner may let them run further ahead. */
  credit(credits: GeneratorCredit[]): void {
    for (const { inputId, attempt, consumed } of credits) {
      if (this.inFlight.get(inputId)?.input.attempt === attempt)
        this.sendRunner({ t: "credit", inputId, attempt, consumed });
    }
  }

  /** The server's answer to this session's claim (routed here by the agent). */
  deliver(message: Extract<ServerToWorker, { t: "inputs" }>): void {
    this.pendingClaim = undefined;
    if (message.shutdown) {
      this.stop("requested", "the server asked it to stop");
      return;
    }
    this.buffered.push(...message.inputs);
    this.feedRunner();
  }

  /** Sends the runner what it asked for from the buffer, then claims what the runner and the buffer lack. */
  private feedRunner(): void {
    if (this.stopReason) return;
    const taken = this.buffered.splice(0, Math.min(this.runnerWants, this.buffered.length));
    if (taken.length > 0) {
      // The runner asks again for whatever room it has left once these arrive.
      this.runnerWants = 0;
      const now = Date.now();
      this.lastActive = now;
      for (const input of taken) {
        this.inFlight.set(input.inputId, {
          input,
          timer: setTimeout(() => this.timeout(input), input.timeoutMs),
          sentAt: now,
        });
      }
      // A blob argument goes as its hash: the runner reads it from the server itself, through api.sock.
      const inputs = taken.map((input): RunnerInput => {
        const args = "inline" in input.args ? input.args.inline : { blob: input.args.blob };
        return input.gen ? { ...attemptRefOf(input), args, gen: true } : { ...attemptRefOf(input), args };
      });
      this.sendRunner({ t: "inputs", inputs });
    }
    const ahead = this.prefetching() ? this.start.spec.maxInputs : 0;
    const want = this.runnerWants + ahead - this.buffered.length;
    if (want > 0 && !this.pendingClaim) this.claim(want);
  }

  /** Whether inputs are claimed ahead: only short ones, so a long input never holds another back. */
  private prefetching(): boolean {
    return !this.start.spec.batched && this.averageRunMs !== undefined && this.averageRunMs < PREFETCH_BELOW_MS;
  }

  /** Inputs claimed ahead go back to the queue, never run and with no failure counted. */
  private returnBuffered(): void {
    const inputs = this.buffered.splice(0).map(attemptRefOf);
    if (inputs.length > 0) this.host.send({ t: "return", inputs });
  }

  /** Claims not yet answered, to send again after the server connection comes back. */
  reclaim(): void {
    if (this.pendingClaim && !this.stopReason) this.claim(this.pendingClaim.max);
  }

  /** The inputs this container holds: running, or claimed ahead (their leases must not lapse). */
  inFlightRefs(): AttemptRef[] {
    return [...[...this.inFlight.values()].map(({ input }) => input), ...this.buffered].map(attemptRefOf);
  }

  /** The runner's connection: the first one only, which gets the container's token. */
  private serveRunner(socket: Socket): void {
    // The runner connects before it loads the function's code; a later connection is that code's, not the runner's.
    if (this.runner) {
      socket.destroy();
      return;
    }
    this.runner = socket;
    this.sendRunner({ t: "hello", token: this.start.token, containerId: this.id });
    this.runnerConnected?.();
    this.runnerConnected = undefined;
    const reader = new FrameReader();
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        const message = parseRunnerMessage(decodeMessage(frame));
        if (!message) {
          this.host.log.warn({ container: this.id }, "bad message from runner");
          continue;
        }
        void this.onRunner(message).catch((error) => this.host.log.error({ err: error }, "runner message failed"));
      }
    });
    socket.on("error", () => {});
    // The runner's connection ends only with its process: no request should go to its web socket after.
    socket.once("close", () => {
      if (this.runnerSnapshotting) {
        // It waits to be snapshotted; a restored container's runner connects again.
        this.runnerSnapshotting = false;
        this.runner = undefined;
        this.snapshotReady?.();
        this.snapshotReady = undefined;
        return;
      }
      this.runnerGone = true;
    });
  }

  private async onRunner(message: RunnerMessage): Promise<void> {
    switch (message.t) {
      case "ready":
        this.ready = true;
        this.host.send({ t: "started", containerId: this.id, start: this.timings.ready(message.phases) });
        return;
      case "snapshot-ready":
        this.runnerSnapshotting = this.snapshotReady !== undefined;
        return;
      case "init-failed":
        this.initError = message.error;
        this.stopReason = "init-failed";
        this.stopMessage = "the function's module failed to load in the container";
        return;
      case "volume": {
        const { rid, op, name } = message;
        try {
          if (!this.mounts)
            throw new Error(`volume "${name}" is not mounted in this function: add it to its \`volumes\``);
          const { version } = await (op === "commit" ? this.mounts.commit(name) : this.mounts.reload(name));
          this.sendRunner({ t: "volume-done", rid, version });
        } catch (error) {
          this.sendRunner({ t: "volume-done", rid, error: (error as Error).message });
        }
        return;
      }
      case "next":
        // A web function's requests come through the relay, never as inputs.
        if (this.webSocketPath) return;
        this.runnerWants = message.max;
        this.feedRunner();
        return;
      case "item": {
        const entry = this.inFlight.get(message.inputId);
        if (!entry || entry.input.attempt !== message.attempt) return;
        this.lastActive = Date.now();
        const previous = this.relaying.get(message.inputId);
        const relayed = (async () => {
          await previous;
          // A value this container may not read is dropped: the count at the generator's end fails the call.
          const data = await this.payloadOf(message.data);
          if (data) this.host.queueItem({ ...attemptRefOf(message), index: message.index, data });
        })();
        const settled: Promise<void> = relayed
          .catch((error: unknown) => this.host.log.error({ err: error, container: this.id }, "generator value failed"))
          .finally(() => {
            if (this.relaying.get(message.inputId) === settled) this.relaying.delete(message.inputId);
          });
        this.relaying.set(message.inputId, settled);
        return;
      }
      case "output": {
        const entry = this.inFlight.get(message.inputId);
        if (!entry || entry.input.attempt !== message.attempt) return;
        clearTimeout(entry.timer);
        this.inFlight.delete(message.inputId);
        this.lastActive = Date.now();
        const ranMs = this.lastActive - entry.sentAt;
        this.averageRunMs = this.averageRunMs === undefined ? ranMs : this.averageRunMs * 0.8 + ranMs * 0.2;
        const values = this.relaying.get(message.inputId);
        if (values) await values;
        const data = await this.payloadOf(message.data);
        if (!data) {
          this.host.queueOutput({
            ...attemptRefOf(message),
            status: "failure",
            code: "INTERNAL",
            retryable: false,
            infra: false,
            data: {
              inline: encodeMessage({
                message: "the container named a result blob that is not stored or that its workspace may not read",
              }),
            },
          });
          return;
        }
        this.host.queueOutput({
          ...attemptRefOf(message),
          status: message.status,
          retryable: message.retryable,
          infra: false,
          data,
          ...(message.status === "failure" ? { code: "USER_ERROR" as const } : {}),
        });
        return;
      }
    }
  }

  /**
   * An output's payload: large bytes go to the blob store; a blob the runner put must be one this container's
   * token may read, or the server would grant the caller's workspace a blob the container never had.
   * Undefined when it may not.
   */
  private async payloadOf(data: RunnerData): Promise<Payload | undefined> {
    if (!(data instanceof Uint8Array)) {
      return (await this.host.mayRead(this.start.token, data.blob)) ? { blob: data.blob } : undefined;
    }
    return data.length > INLINE_PAYLOAD_LIMIT ? { blob: await this.host.putBlob(data) } : { inline: data };
  }

  private claim(max: number): void {
    this.host.claim(this, max);
    this.pendingClaim = { max };
  }

  private timeout(input: ClaimedInput): void {
    this.timedOut = input.inputId;
    this.kill("timeout", `an input ran past its ${input.timeoutMs} ms timeout`);
  }

  /** Idle past the scaledown window: the server decides (its pool may keep it warm); asks again a window later. */
  private checkIdle(): void {
    if (this.stopReason || !this.ready || this.busy) return;
    if (Date.now() - this.lastActive < this.start.spec.scaledownWindowMs) return;
    this.lastActive = Date.now();
    this.host.send({ t: "idle", containerId: this.id });
  }

  /** Running inputs or web requests. */
  private get busy(): boolean {
    return this.inFlight.size > 0 || this.webRequests > 0;
  }

  private finish(exit: ContainerExit): void {
    const reason: StopReason = exit.oomKilled ? "oom" : (this.stopReason ?? "crashed");
    this.returnBuffered();
    const lost: AttemptRef[] = [];
    for (const { input, timer } of this.inFlight.values()) {
      clearTimeout(timer);
      const failure = this.failureFor(input, reason, exit);
      if (failure) this.host.queueOutput(failure);
      else lost.push(attemptRefOf(input));
    }
    this.inFlight.clear();
    const message =
      reason === "crashed"
        ? `the container exited (code ${exit.exitCode ?? exit.signal}) ${FRAGMENT}`
        : reason === "oom" && !this.ready
          ? `the container ran out of memory (limit ${this.start.spec.memoryMiB} MiB) while starting: raise \`memory\``
          : this.stopMessage;
    this.host.send({
      t: "stopped",
      containerId: this.id,
      reason,
      inFlight: lost,
      ...(message ? { message } : {}),
      ...(this.initError ? { error: this.initError } : {}),
    });
    this.host.ended(this);
  }

  /** The failure an input gets when its container ends under it; undefined means requeue it (not its fault). */
  private failureFor(input: ClaimedInput, reason: StopReason, exit: ContainerExit): WorkerOutput | undefined {
    const fail = (code: ErrorCode, message: string): WorkerOutput => ({
      ...attemptRefOf(input),
      status: "failure",
      code,
      retryable: true,
      infra: false,
      data: { inline: failurePayload(message) },
    });
    if (reason === "timeout") {
      return input.inputId === this.timedOut
        ? fail("TIMEOUT", `the input ran longer than its timeout (${input.timeoutMs} ms) and was stopped`)
        : undefined;
    }
    if (reason === "oom") {
      return fail(
        "OUT_OF_MEMORY",
        `the container ran out of memory (limit ${this.start.spec.memoryMiB} MiB) while running this input: raise \`memory\``,
      );
    }
    if (reason === "crashed") {
      return fail(
        "CONTAINER_CRASHED",
        `the container exited (code ${exit.exitCode ?? exit.signal}) while running this input: did the function call process.exit() or crash?`,
      );
    }
    return undefined;
  }

  private sendRunner(message: WorkerToRunner): void {
    if (this.runner && !this.runner.destroyed) writeFrames(this.runner, [encodeMessage(message)]);
  }

  private logLine(stream: "stdout" | "stderr" | "system", line: string): void {
    this.host.queueLog({
      ts: Date.now(),
      appId: this.start.appId,
      functionName: this.start.spec.name,
      containerId: this.id,
      stream,
      line: this.redact(line),
    });
  }
}

/**
 * Checkpoints, trying again twice 250 ms apart: a connection the runner has just closed may hold its host
 * socket a moment longer inside gVisor, which fails the checkpoint; a failed checkpoint leaves the container
 * running, so another try is safe.
 */
async function checkpointSoon(checkpoint: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await checkpoint();
    } catch (error) {
      if (attempt >= CHECKPOINT_TRIES) throw error;
      await sleep(CHECKPOINT_RETRY_MS);
    }
  }
}

const CHECKPOINT_TRIES = 3;
const CHECKPOINT_RETRY_MS = 250;

/** Why a container that did not get ready within its startupTimeout was stopped, and what to do. */
function notReadyMessage(spec: FunctionSpec): string {
  const within = `within its startupTimeout (${spec.startupTimeoutMs} ms)`;
  if (spec.web?.kind === "server")
    return `the web server did not accept connections on port ${spec.web.port} ${within}: make \`start\` listen on port ${spec.web.port} (on 127.0.0.1 or 0.0.0.0), or raise \`startupTimeout\``;
  return `the container did not become ready ${within}: raise \`startupTimeout\` or make loading and \`enter\` hooks faster`;
}
