import { LEASE_MS } from "@skiff/protocol";
import type { EngineState } from "../state.js";
import { type CallSystem, newInput } from "./calls.js";

/**
 * Restart recovery: unfinished inputs are reloaded `held` until every worker seen in the last lease
 * period has said hello (and which inputs it still runs) or that period has passed; then the rest run
 * again.
 */
export class RecoverySystem {
  /** After a restart: workers that may still run inputs, not yet heard from. */
  private awaited = new Set<string>();

  constructor(
    private readonly state: EngineState,
    private readonly deps: { calls: CallSystem; requestAutoscale: () => void },
  ) {}

  /** Reloads unfinished inputs from the store, held until their workers are back. */
  async recover(): Promise<void> {
    const { store, queue, log } = this.state;
    const unfinished = await store.calls.unfinishedInputs();
    this.awaited = new Set(unfinished.length > 0 ? await store.fleet.recentWorkers(LEASE_MS) : []);
    queue.add(
      unfinished.map((row) => ({
        ...newInput(row.inputId, row.callId, row.idx, row.functionId, row.args),
        attempt: row.attempt,
        userFailures: row.userFailures,
        infraFailures: row.infraFailures,
        state: "held",
        until: row.runAfterMs,
      })),
    );
    for (const row of unfinished) this.deps.calls.callState(row.callId, row.functionId).unfinished++;
    if (unfinished.length > 0)
      log.info({ inputs: unfinished.length, workers: this.awaited.size }, "reloaded unfinished inputs");
    if (this.awaited.size === 0) this.releaseHeld();
    else setTimeout(() => this.releaseHeld(), LEASE_MS).unref();
  }

  /** A worker said hello: once the last awaited one has, the held inputs run again. */
  workerBack(workerId: string): void {
    if (this.awaited.delete(workerId) && this.awaited.size === 0) this.releaseHeld();
  }

  /**
   * Puts every input still held since the restart back in the queue (delayed ones after their backoff),
   * in the order they were submitted: behind inputs lost since, so that a worker that dies after the
   * restart has its inputs run again at once rather than after the whole backlog.
   */
  private releaseHeld(): void {
    const { queue, dispatcher } = this.state;
    this.awaited.clear();
    const now = Date.now();
    for (const input of queue.held()) queue.requeue(input, input.until, now, "fresh");
    dispatcher.serveAll();
    this.deps.requestAutoscale();
  }
}
