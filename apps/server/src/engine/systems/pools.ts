import type { FunctionSpec } from "@skiff/protocol";
import { ApiError } from "../../errors.js";
import { capacityProblem } from "../capacity.js";
import { poolOverrides, splitPoolId, withOverrides } from "../pool-options.js";
import type { Caller, EngineState, FunctionInfo } from "../state.js";
import type { ContainerInfo } from "../workers.js";
import { classParams } from "./class-params.js";

/** The pool catalog: what memory holds of each pool (loaded from the store on first use) and who may call it. */
export class PoolSystem {
  constructor(private readonly state: EngineState) {}

  /** A pool by id, loaded from the store on first use; NOT_FOUND if its function is not there. */
  async functionInfo(functionId: string): Promise<FunctionInfo> {
    const { functions, warm, store } = this.state;
    const cached = functions.get(functionId);
    if (cached) return cached;
    const pool = splitPoolId(functionId);
    if (pool) {
      const base = await this.functionInfo(pool.baseId);
      const overrides = pool.options === undefined ? undefined : poolOverrides(base.spec, pool.options);
      const info: FunctionInfo = {
        ...base,
        id: functionId,
        params: pool.params === undefined ? undefined : classParams(base.spec, pool.params),
        overrides,
        spec: overrides ? withOverrides(base.spec, overrides) : base.spec,
      };
      functions.set(functionId, info);
      if (overrides && minContainersOf(info) > 0 && !info.stopped) warm.add(info.id);
      return info;
    }
    const row = await store.apps.getFunction(functionId);
    if (!row) throw missingFunction(functionId);
    const info: FunctionInfo = {
      id: row.id,
      baseId: row.id,
      appId: row.appId,
      appName: row.app.name,
      workspace: row.app.workspace,
      env: row.app.env,
      bundleHash: row.app.bundleHash,
      spec: row.spec,
      version: row.app.version,
      stopped: stoppedReason(row.app, row),
      params: undefined,
      overrides: undefined,
    };
    functions.set(functionId, info);
    if (info.spec.minContainers > 0 && !info.stopped) warm.add(info.id);
    return info;
  }

  /** A function (or pool) the caller may call; anything else is "not found", as a missing one. */
  async functionIn(caller: Caller, functionId: string): Promise<FunctionInfo> {
    const info = await this.functionInfo(functionId).catch((error: unknown) => {
      if (error instanceof ApiError && error.code === "NOT_FOUND") return undefined;
      throw error;
    });
    if (!info || !reaches(caller, info)) throw missingFunction(functionId);
    return info;
  }

  /** The pools of a function or class that memory holds. */
  poolsOf(baseId: string): FunctionInfo[] {
    return [...this.state.functions.values()].filter((info) => info.baseId === baseId);
  }

  /**
   * Refuses functions no connected worker can ever run (BAD_REQUEST naming the function, the largest
   * worker and what to lower); with no worker connected, calls wait for one.
   */
  checkCapacity(specs: FunctionSpec[]): void {
    const capacities = this.state.workers.all().map((worker) => worker.capacity);
    for (const spec of specs) {
      const problem = capacityProblem(`${spec.kind} "${spec.name}"`, spec, capacities);
      if (problem) throw new ApiError("BAD_REQUEST", problem);
    }
  }

  /** A pool's containers of its current version that are not stopping: those the autoscaler counts. */
  currentContainers(info: FunctionInfo): ContainerInfo[] {
    return this.state.workers.containersOf(info.id).filter((c) => isCurrent(c, info));
  }

  /** Whether a container of an older version has a running container of the current one in its pool. */
  replaced(container: ContainerInfo, info: FunctionInfo): boolean {
    if (container.version >= info.version) return false;
    return this.currentContainers(info).some((c) => c.state === "running");
  }
}

/** Whether `caller` may call the pool: of its workspace, and of its environment for a container's token. */
export function reaches(caller: Caller, info: FunctionInfo): boolean {
  return info.workspace === caller.workspace && (caller.env === undefined || info.env === caller.env);
}

/** Whether a container counts for its pool: of the current version and not stopping. */
export function isCurrent(container: ContainerInfo, info: FunctionInfo): boolean {
  return !container.stopping && container.version >= info.version;
}

/** Whether a container runs an older version of its pool and serves until a new one replaces it. */
export function replaceable(container: ContainerInfo, info: FunctionInfo): boolean {
  return !container.stopping && container.state === "running" && container.version < info.version;
}

/** The containers a pool keeps with no work: parameter sets of a class are made on demand, so only its default pool. */
export function minContainersOf(info: FunctionInfo): number {
  return info.params === undefined ? info.spec.minContainers : 0;
}

/** Why a function takes no calls: its app stopped, or its app's current version left it out. */
export function stoppedReason(app: { state: string; version: number }, fn: { version: number }): string | undefined {
  if (app.state !== "running") return "is stopped: run or deploy it again";
  if (fn.version !== app.version) return `was removed in version ${app.version} of its app`;
  return undefined;
}

function missingFunction(functionId: string): ApiError {
  return new ApiError("NOT_FOUND", `no function ${functionId}: was its app stopped? run or deploy it again`);
}
