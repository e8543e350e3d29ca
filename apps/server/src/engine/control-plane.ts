import {
  type ContainerView,
  type FunctionSpec,
  type ImageSecrets,
  type ImageSpec,
  RESULT_TTL_MS,
  type Terminal,
  type WorkerMessage,
} from "@skiff/protocol";
import type { AppRow, FunctionRow, Scope } from "@skiff/store";
import type { Subscriber } from "./hub.js";
import type { InputQueue } from "./queue.js";
import { Scheduler, type ScheduleState } from "./scheduler.js";
import { type Caller, createEngineState, type EngineOptions, type EngineState } from "./state.js";
import { AppSystem, type AutoscalerSettings } from "./systems/apps.js";
import { AttemptSystem, TICK_MS } from "./systems/attempts.js";
import { AutoscalingSystem } from "./systems/autoscaling.js";
import { BuildGrantSystem, type BuildVolumes } from "./systems/build-grants.js";
import { CallSystem, type Submit } from "./systems/calls.js";
import { ContainerSystem } from "./systems/containers.js";
import { PoolSystem } from "./systems/pools.js";
import { RecoverySystem } from "./systems/recovery.js";
import { RelaySystem, type ShellMessage } from "./systems/relays.js";
import { SecretSystem } from "./systems/secrets.js";
import { WebSystem } from "./systems/web.js";
import { type HeldAttempt, WorkerSessionSystem } from "./systems/worker-sessions.js";
import type { WorkerConn } from "./workers.js";

/** What the control plane is built from. */
export interface ControlPlaneOptions extends EngineOptions {
  /** Ephemeral apps whose client has been silent this long are stopped. */
  abandonAfterMs?: number;
}

/**
 * The server's engine, as routes and sockets see it. Inputs are queued, leased and retried in memory, so
 * a call goes from submit to a container and back without waiting on the store; the persister writes
 * behind it, and a submit is acknowledged (a worker's outputs confirmed) once durable. The work is done
 * by systems over one shared state (see ARCHITECTURE.md); this façade builds them, owns the timers and
 * hands each call to the system that owns it.
 */
export class ControlPlane {
  private readonly state: EngineState;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly scheduler: Scheduler;
  private readonly pools: PoolSystem;
  private readonly secrets: SecretSystem;
  private readonly builds: BuildGrantSystem;
  private readonly attempts: AttemptSystem;
  private readonly calls: CallSystem;
  private readonly containerSystem: ContainerSystem;
  private readonly autoscaling: AutoscalingSystem;
  private readonly apps: AppSystem;
  private readonly relays: RelaySystem;
  private readonly recovery: RecoverySystem;
  private readonly sessions: WorkerSessionSystem;
  private readonly webSystem: WebSystem;

  constructor(options: ControlPlaneOptions) {
    const state = createEngineState(options);
    const requestAutoscale = () => this.autoscaling.request();
    this.state = state;
    this.pools = new PoolSystem(state);
    this.secrets = new SecretSystem(state);
    this.builds = new BuildGrantSystem(state);
    this.webSystem = new WebSystem(state, { pools: this.pools, requestAutoscale });
    this.attempts = new AttemptSystem(state, { pools: this.pools, requestAutoscale });
    this.calls = new CallSystem(state, { pools: this.pools, attempts: this.attempts, requestAutoscale });
    this.scheduler = new Scheduler({
      schedules: options.store.schedules,
      log: options.log,
      submit: (functionId) => this.calls.submitScheduled(functionId),
      // Calls are remembered for a while after they finish, and unfinished ones are reloaded at restart.
      unfinished: (callId) => this.calls.unfinished(callId),
    });
    this.containerSystem = new ContainerSystem(state, {
      pools: this.pools,
      secrets: this.secrets,
      builds: this.builds,
      attempts: this.attempts,
      web: this.webSystem,
      requestAutoscale,
      containerGone: (appId) => this.apps.endLogsOnceStopped(appId),
    });
    this.autoscaling = new AutoscalingSystem(state, {
      pools: this.pools,
      containers: this.containerSystem,
      web: this.webSystem,
    });
    this.apps = new AppSystem(state, {
      pools: this.pools,
      attempts: this.attempts,
      containers: this.containerSystem,
      web: this.webSystem,
      scheduler: this.scheduler,
      requestAutoscale,
      abandonAfterMs: options.abandonAfterMs ?? 60_000,
    });
    this.relays = new RelaySystem(state, { builds: this.builds });
    this.recovery = new RecoverySystem(state, { calls: this.calls, requestAutoscale });
    this.sessions = new WorkerSessionSystem(state, {
      pools: this.pools,
      attempts: this.attempts,
      containers: this.containerSystem,
      apps: this.apps,
      relays: this.relays,
      recovery: this.recovery,
      web: this.webSystem,
      requestAutoscale,
    });
  }

  /** Reloads unfinished inputs, then starts the periodic work. */
  async start(): Promise<void> {
    const { store, log, workers, warm } = this.state;
    await this.recovery.recover();
    for (const id of await store.apps.warmFunctions()) warm.add(id);
    const every = (ms: number, fn: () => unknown) => {
      const timer = setInterval(async () => {
        try {
          await fn();
        } catch (error) {
          log.error({ err: error }, "periodic task failed");
        }
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(250, () => this.autoscaling.pass());
    every(TICK_MS, () => this.attempts.tick());
    every(3000, () => store.fleet.touchWorkers(workers.all().map((w) => w.id)));
    every(5000, () => this.apps.stopAbandonedApps());
    every(60_000, () => this.forgetOld());
    every(3_600_000, () => store.calls.deleteFinished(RESULT_TTL_MS));
    this.scheduler.start();
  }

  /** Stops the periodic work and waits for pending writes. */
  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.calls.stop();
    await this.scheduler.stop();
    await this.state.persister.flushed();
  }

  /** Requeues expired leases and retries whose backoff ended (a timer runs it every TICK_MS). */
  tick(): void {
    this.attempts.tick();
  }

  /** Runs the autoscaler soon; calls that arrive while it runs cause one more pass. */
  requestAutoscale(): void {
    this.autoscaling.request();
  }

  /** The queued inputs, read-only: for diagnostics and tests. */
  get inputs(): Pick<InputQueue, "get" | "held"> {
    return this.state.queue;
  }

  /** Web requests, as the gateway sees them: a web function's pool, a container's slot, a request's log line. */
  get web(): Pick<WebSystem, "find" | "acquire" | "logRequest"> {
    return this.webSystem;
  }

  /** How many workers are connected. */
  workerCount(): number {
    return this.state.workers.all().length;
  }

  // ---- apps ----

  /** A new version of an app is in the store: its pools take it over (see AppSystem.deployed). */
  deployed(app: AppRow, functions: FunctionRow[]): Promise<void> {
    return this.apps.deployed(app, functions);
  }

  /** Overrides a function's autoscaling until its next deploy; applies to every pool of a class. */
  updateAutoscaler(workspace: string, functionId: string, patch: AutoscalerSettings): Promise<FunctionSpec> {
    return this.apps.updateAutoscaler(workspace, functionId, patch);
  }

  /** Stops an app: its calls are cancelled, its containers stop. */
  stopApp(appId: string): Promise<void> {
    return this.apps.stopApp(appId);
  }

  /** The schedules of an app's functions, with their next runs. */
  schedules(appId: string): Promise<ScheduleState[]> {
    return this.scheduler.list({ appId });
  }

  /** Streams an app's logs to a subscriber, if the app is the workspace's; `resume` replays the last minute. */
  subscribeLogs(workspace: string, appId: string, subscriber: Subscriber, resume = false): Promise<void> {
    return this.apps.subscribeLogs(workspace, appId, subscriber, resume);
  }

  /** The containers the workers run for a workspace's apps, for `skiff container list`. */
  containers(workspace: string): ContainerView[] {
    return this.containerSystem.list(workspace);
  }

  /** Refuses functions no connected worker can ever run; with no worker connected, calls wait for one. */
  checkCapacity(specs: FunctionSpec[]): void {
    this.pools.checkCapacity(specs);
  }

  // ---- calls ----

  /** Queues a chunk of a call's inputs and hands them to waiting containers; resolves once durable. */
  submit(call: Submit, subscriber: Subscriber | undefined, caller: Caller): Promise<void> {
    return this.calls.submit(call, subscriber, caller);
  }

  /** A generator call's caller took `consumed` values: its running attempt may go further ahead. */
  generatorTaken(caller: Caller, callId: string, consumed: number): Promise<void> {
    return this.calls.generatorTaken(caller, callId, consumed);
  }

  /** Subscribes to a call's results, then replays what already finished. */
  subscribe(caller: Caller, callId: string, fromIdx: number, subscriber: Subscriber): Promise<void> {
    return this.calls.subscribe(caller, callId, fromIdx, subscriber);
  }

  /** Stops pushing a call's results to a subscriber. */
  unsubscribe(callId: string, subscriber: Subscriber): void {
    this.state.hub.unsubscribeCall(callId, subscriber);
  }

  /** Forgets a subscriber that went away: its calls and log streams alike. */
  removeSubscriber(subscriber: Subscriber): void {
    this.calls.callersGone(this.state.hub.remove(subscriber));
  }

  /** Cancels a call's unfinished inputs. */
  cancel(caller: Caller, callId: string): Promise<void> {
    return this.calls.cancel(caller, callId);
  }

  // ---- secrets, builds and shells ----

  /** The registry login and step secrets building `image` needs, from `scope`. */
  imageSecrets(scope: Scope, image: ImageSpec): Promise<ImageSecrets> {
    return this.secrets.imageSecrets(scope, image);
  }

  /**
   * The volumes building `image` in `scope` mounts (undefined if none): those marked createIfMissing are
   * made now; with `strict` (an explicit build) a missing one is refused, as at deploy.
   */
  buildVolumes(scope: Scope, image: ImageSpec, strict: boolean): Promise<BuildVolumes | undefined> {
    return this.builds.volumesOf(scope, image, { author: "image build", strict });
  }

  /** Builds an image on a worker now; resolves with the exported layout's blob if `export` was asked. */
  buildImage(
    image: ImageSpec,
    onLines: (lines: string[]) => void,
    options: { export?: boolean; secrets?: ImageSecrets; volumes?: BuildVolumes | undefined } = {},
  ): Promise<string | undefined> {
    return this.relays.buildImage(image, onLines, options);
  }

  /** Opens a shell in a container of `image` on a worker; its output and exit go to `send`. */
  openShell(
    shell: { sid: string; image: ImageSpec; command: string[]; tty?: Terminal | undefined },
    send: (message: ShellMessage) => void,
    secrets: ImageSecrets = {},
    volumes?: BuildVolumes,
  ): Promise<void> {
    return this.relays.openShell(shell, send, secrets, volumes);
  }

  /** Resizes a shell's terminal. */
  shellResize(sid: string, rows: number, cols: number): void {
    this.relays.shellResize(sid, rows, cols);
  }

  /** Passes a client's input (or its end) to a shell. */
  shellInput(sid: string, data: Uint8Array | undefined, eof: boolean): void {
    this.relays.shellInput(sid, data, eof);
  }

  /** Ends a shell whose client went away. */
  closeShell(sid: string): void {
    this.relays.closeShell(sid);
  }

  // ---- workers ----

  /** A worker said hello, with the containers and attempts it still has. */
  workerConnected(worker: WorkerConn, runtime: string, containers: string[], held: HeldAttempt[]): Promise<void> {
    return this.sessions.connect(worker, runtime, containers, held);
  }

  /** A worker's connection closed. */
  workerDisconnected(worker: WorkerConn): Promise<void> {
    return this.sessions.disconnect(worker);
  }

  /** A message from a connected worker, handed to the system that owns its type. */
  workerMessage(worker: WorkerConn, message: WorkerMessage): Promise<void> {
    return this.sessions.route(worker, message);
  }

  /** Forgets finished calls, start failures past their backoff and old waiting notices. */
  private forgetOld(): void {
    const now = Date.now();
    this.calls.forgetOldCalls(now);
    this.autoscaling.forgetOld(now);
  }
}
