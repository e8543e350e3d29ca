import type { ColdStart, StartPhases } from "@skiff/protocol";

const LAST_PHASE: Record<ColdStart["kind"], string> = { booted: "boot", restored: "restore", spare: "adopt" };

/**
 * One container's cold start, timed phase by phase: the session calls `lap(phase)` as each phase ends, and the
 * last one (`boot`, or `restore`) ends when the runner says it is ready, less the phases the runner timed
 * itself (`load`, `enter`, `serve`). The phases add up to the worker's whole share of the start: each lap is
 * rounded from the start, not on its own, so no milliseconds are lost or counted twice.
 */
export class StartTimings {
  private readonly phases: StartPhases = {};
  private readonly origin: number;
  /** Whole milliseconds from the start to the last lap. */
  private lapped = 0;
  private kind: ColdStart["kind"] = "booted";

  constructor(private readonly now: () => number = () => performance.now()) {
    this.origin = now();
  }

  /** `phase` ended now: it ran since the last lap (or the start). */
  lap(phase: string): void {
    const at = this.sinceOrigin();
    this.phases[phase] = at - this.lapped;
    this.lapped = at;
  }

  /**
   * How the container starts, which names its last phase: `boot`, `restore` (from a snapshot) or `adopt` (a
   * spare runner). Called again when that changes (a restore failed: it boots after all).
   */
  startsAs(kind: ColdStart["kind"]): void {
    this.kind = kind;
  }

  /** The runner said it is ready, with the phases it timed: the start, as `started` reports it. */
  ready(runner: StartPhases = {}): ColdStart {
    const last = LAST_PHASE[this.kind];
    const own = Object.values(runner).reduce((sum, ms) => sum + ms, 0);
    const waited = this.sinceOrigin() - this.lapped;
    return { kind: this.kind, phases: { ...this.phases, [last]: Math.max(0, waited - own), ...runner } };
  }

  private sinceOrigin(): number {
    return Math.round(this.now() - this.origin);
  }
}
