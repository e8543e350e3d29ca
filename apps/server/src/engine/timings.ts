/** Until a function's containers have started once, assume a cold start costs this much. */
const ASSUMED_COLD_START_MS = 1000;
const WEIGHT = 0.2;

const blend = (old: number | undefined, sample: number) =>
  old === undefined ? sample : old * (1 - WEIGHT) + sample * WEIGHT;

/**
 * How long a function's inputs take and how long its containers take to start (moving averages), so the
 * autoscaler starts a container only when it would help: when the containers already there would not
 * drain the backlog before a new one is ready.
 */
export class FunctionTimings {
  private readonly runMs = new Map<string, number>();
  private readonly coldMs = new Map<string, number>();

  noteRun(functionId: string, ms: number): void {
    this.runMs.set(functionId, blend(this.runMs.get(functionId), ms));
  }

  noteColdStart(functionId: string, ms: number): void {
    this.coldMs.set(functionId, blend(this.coldMs.get(functionId), ms));
  }

  /**
   * Whether another container would finish `work` inputs sooner than the `slots` already live or starting.
   * Unknown run times say yes: a first burst scales as before.
   */
  worthAnotherContainer(functionId: string, work: number, slots: number): boolean {
    const runMs = this.runMs.get(functionId);
    if (runMs === undefined || slots === 0) return true;
    const drainMs = (work / slots) * runMs;
    return drainMs > (this.coldMs.get(functionId) ?? ASSUMED_COLD_START_MS);
  }
}
