import { type FunctionSpec, failurePayload, type WorkerMessage } from "@skiff/protocol";
import type { AppRow, FunctionRow } from "@skiff/store";
import { ApiError } from "../../errors.js";
import type { Subscriber } from "../hub.js";
import { withOverrides } from "../pool-options.js";
import type { EngineState, FunctionInfo } from "../state.js";
import type { WorkerConn } from "../workers.js";
import { stoppedReason } from "./pools.js";
import type { Systems } from "./systems.js";

/** What `updateAutoscaler` may change at runtime. */
export type AutoscalerSettings = Partial<
  Pick<FunctionSpec, "minContainers" | "maxContainers" | "bufferContainers" | "scaledownWindowMs">
>;

type Logs = Extract<WorkerMessage, { t: "logs" }>;

/**
 * App lifecycle: a deploy's new version taking over its pools, runtime autoscaling overrides, stopping an
 * app (and ephemeral apps whose client went away), and its log stream until its last container is gone.
 */
export class AppSystem {
  /** Stopped apps whose log watchers wait for their containers' last lines (see endLogsOnceStopped). */
  private readonly endingLogs = new Set<string>();

  constructor(
    private readonly state: EngineState,
    private readonly deps: Pick<
      Systems,
      "pools" | "attempts" | "containers" | "web" | "scheduler" | "requestAutoscale"
    > & {
      /** Ephemeral apps whose client has been silent this long are stopped. */
      abandonAfterMs: number;
    },
  ) {}

  /**
   * A new version of an app is in the store: its pools take the new code and spec, containers of older
   * versions keep serving until a container of the new one runs in their pool (then they drain), and
   * functions it left out fail their waiting inputs. A web function it left out hands its waiting requests
   * to the function that has its label now, if one does.
   */
  async deployed(app: AppRow, functions: FunctionRow[]): Promise<void> {
    // Schedules run for deployed apps only; a run's new version (`skiff serve` reloading) has none.
    if (app.mode === "deployed") await this.deps.scheduler.sync(app.id, functions);
    const current = new Map(functions.map((row) => [row.id, row]));
    const removed: FunctionInfo[] = [];
    for (const info of this.state.functions.values()) {
      if (info.appId !== app.id) continue;
      const row = current.get(info.baseId);
      // A function the new version left out keeps its last spec and counts as removed.
      Object.assign(info, {
        bundleHash: app.bundleHash,
        version: app.version,
        stopped: stoppedReason(app, { version: row?.version ?? 0 }),
        ...(row ? { spec: info.overrides ? withOverrides(row.spec, info.overrides) : row.spec } : {}),
      });
      if (info.stopped) removed.push(info);
    }
    // A removed web function whose label the new version gives another keeps serving until that one's
    // containers replace its own (see ContainerSystem.started).
    const handed = new Set<string>();
    for (const info of removed) {
      const label = info.spec.web?.label;
      const heir = label && functions.find((row) => row.spec.web?.label === label && row.version === app.version);
      if (!heir) continue;
      this.deps.web.handOver(info, await this.deps.pools.functionInfo(heir.id));
      handed.add(info.id);
    }
    const inputs = removed.flatMap((info) => this.state.queue.ofFunction(info.id));
    await this.deps.attempts.failAll(inputs, "CANCELLED", failurePayload("the function was removed by a deploy"));
    this.deps.containers.stopAll(
      (container) => removed.some((info) => info.id === container.functionId && !handed.has(info.id)),
      "removed by a deploy",
    );
    for (const row of functions) if (row.spec.minContainers > 0) this.state.warm.add(row.id);
    this.deps.requestAutoscale();
  }

  /** Overrides a function's autoscaling until its next deploy; applies to every pool of a class. */
  async updateAutoscaler(workspace: string, functionId: string, patch: AutoscalerSettings): Promise<FunctionSpec> {
    const { pools } = this.deps;
    const pool = await pools.functionIn({ workspace }, functionId);
    const info = await pools.functionInfo(pool.baseId);
    if (info.stopped) throw new ApiError("CONFLICT", `function ${info.spec.name} ${info.stopped}`);
    const spec = { ...info.spec, ...patch };
    if (spec.maxContainers < Math.max(1, spec.minContainers)) {
      throw new ApiError(
        "BAD_REQUEST",
        `maxContainers (${spec.maxContainers}) must be at least minContainers (${spec.minContainers}) and 1`,
      );
    }
    await this.state.store.apps.updateFunctionSpec(info.baseId, spec);
    for (const pool of pools.poolsOf(info.baseId))
      pool.spec = pool.overrides ? withOverrides(spec, pool.overrides) : spec;
    if (spec.minContainers > 0) this.state.warm.add(info.baseId);
    this.deps.requestAutoscale();
    return spec;
  }

  /** Stops an app: its calls are cancelled, its containers stop, its log watchers hear the end after them. */
  async stopApp(appId: string): Promise<void> {
    const { store, functions, warm, queue } = this.state;
    await store.apps.stop(appId);
    await this.deps.scheduler.schedules.removeApp(appId);
    const stopped = [...functions.values()].filter((info) => info.appId === appId);
    for (const info of stopped) {
      info.stopped = "is stopped: run or deploy it again";
      warm.delete(info.id);
    }
    const inputs = stopped.flatMap((info) => queue.ofFunction(info.id));
    await this.deps.attempts.failAll(inputs, "CANCELLED", failurePayload("the app was stopped"));
    this.deps.containers.stopAll(
      (container) => functions.get(container.functionId)?.appId === appId,
      "the app was stopped",
    );
    this.endingLogs.add(appId);
    this.endLogsOnceStopped(appId);
  }

  /** Stops ephemeral apps whose client has been silent for `abandonAfterMs`. */
  async stopAbandonedApps(): Promise<void> {
    for (const appId of await this.state.store.apps.abandoned(this.deps.abandonAfterMs)) {
      this.state.log.info({ appId }, "stopping ephemeral app whose client went away");
      await this.stopApp(appId);
    }
  }

  /**
   * Tells a stopped app's log watchers that its lines are all sent, once none of its containers is left: a
   * worker reports a container `stopped` after its last lines.
   */
  endLogsOnceStopped(appId: string): void {
    if (!this.endingLogs.has(appId)) return;
    for (const worker of this.state.workers.all()) {
      for (const container of worker.containers.values())
        if (this.state.functions.get(container.functionId)?.appId === appId) return;
    }
    this.endingLogs.delete(appId);
    this.state.hub.endLogs(appId);
  }

  /**
   * Streams an app's logs to a subscriber, if the app is the workspace's; `resume` (a reconnect) first
   * sends the lines of the last minute.
   */
  async subscribeLogs(workspace: string, appId: string, subscriber: Subscriber, resume = false): Promise<void> {
    const app = await this.state.store.apps.get(appId);
    if (app?.workspace !== workspace) throw new ApiError("NOT_FOUND", `no app ${appId}: see \`skiff app list\``);
    this.state.hub.subscribeLogs(appId, subscriber, resume);
  }

  /** Log lines from a worker's containers, pushed to their apps' watchers. */
  logs(worker: WorkerConn, message: Logs): void {
    this.state.hub.publishLogs(message.lines);
    // Pushed to its watchers (nothing keeps logs longer): the worker may forget the batch.
    if (message.seq !== undefined) worker.send({ t: "logs-recorded", seq: message.seq });
  }
}
