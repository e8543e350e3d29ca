import type { FunctionSpec, Schedule } from "@skiff/protocol";
import type { ScheduleRow, ScheduleStore } from "@skiff/store";
import { Cron } from "croner";
import type { Logger } from "pino";
import { ApiError } from "../errors.js";

export interface SchedulerOptions {
  schedules: ScheduleStore;
  /** Starts a run of a function with no arguments; resolves with its call id. */
  submit: (functionId: string) => Promise<string>;
  /** Whether a call is still going: a run still going makes the next tick skip instead of piling up. */
  unfinished: (callId: string) => boolean | Promise<boolean>;
  log: Logger;
  /** The clock, in ms since the epoch (default Date.now). */
  now?: () => number;
  /**
   * Whether this replica fires schedules now, e.g. whether it holds the server's Postgres advisory lock.
   * Optional: each tick is claimed with a compare-and-set in the store, so replicas that all tick still
   * fire it once; a leader only spares the others the work of looking.
   */
  isLeader?: () => boolean | Promise<boolean>;
  /** How often `start()` looks for due ticks (default 1 s). */
  intervalMs?: number;
}

/** A schedule with its next run, for display. */
export interface ScheduleState extends ScheduleRow {
  nextRunMs: number | undefined;
}

/**
 * Fires the schedules of deployed functions. Each tick of a schedule fires at most once, even with several
 * schedulers on one store: the first to claim it in the store fires it. A tick whose previous run is still
 * going is skipped and recorded as such. After downtime only the latest missed tick fires, once; ticks
 * before a schedule was deployed never fire. A claimed tick whose server dies before it submits is lost:
 * at most once per tick, as cron.
 */
export class Scheduler {
  readonly schedules: ScheduleStore;
  private readonly submit: SchedulerOptions["submit"];
  private readonly unfinished: SchedulerOptions["unfinished"];
  private readonly isLeader: SchedulerOptions["isLeader"];
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** Schedules (function and anchor) already reported as unreadable, to report each once. */
  private readonly broken = new Set<string>();

  constructor(options: SchedulerOptions) {
    this.schedules = options.schedules;
    this.submit = options.submit;
    this.unfinished = options.unfinished;
    this.isLeader = options.isLeader;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.intervalMs = options.intervalMs ?? 1000;
  }

  /** Looks for due ticks every `intervalMs` until `stop()`; a look still running makes the next one wait. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.tick()
        .catch((error) => this.log.error({ err: error }, "scheduler: could not read the schedules"))
        .finally(() => {
          this.running = undefined;
        });
    }, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /**
   * Sets an app's schedules from its deployed functions (those without a schedule lose theirs), anchored
   * at this scheduler's clock. Throws ApiError BAD_REQUEST for a schedule croner refuses, before writing.
   */
  async sync(appId: string, functions: { id: string; spec: FunctionSpec }[]): Promise<void> {
    const scheduled: { functionId: string; schedule: Schedule }[] = [];
    for (const { id, spec } of functions) {
      if (!spec.schedule) continue;
      checkSchedule(spec.schedule, `function "${spec.name}"`);
      scheduled.push({ functionId: id, schedule: spec.schedule });
    }
    await this.schedules.sync(appId, scheduled, this.now());
  }

  /** Fires every schedule with a tick due now, once each. */
  async tick(): Promise<void> {
    if (this.isLeader && !(await this.isLeader())) return;
    const now = this.now();
    const rows = await this.schedules.active();
    await Promise.all(rows.map((row) => this.fire(row, now)));
  }

  /** Schedules with their latest and next runs, for display: all of them, or one app's. */
  async list(filter: { appId?: string } = {}): Promise<ScheduleState[]> {
    const now = this.now();
    return (await this.schedules.list(filter)).map((row) => {
      let nextRunMs: number | undefined;
      try {
        nextRunMs = nextRun(row.schedule, row.anchorMs, now);
      } catch {
        nextRunMs = undefined;
      }
      return { ...row, nextRunMs };
    });
  }

  private async fire(row: ScheduleRow, now: number): Promise<void> {
    let tickMs: number | undefined;
    try {
      tickMs = dueTick(row.schedule, row.anchorMs, row.lastTickMs, now);
    } catch (error) {
      const key = `${row.functionId}@${row.anchorMs}`;
      if (!this.broken.has(key)) this.log.error({ err: error, functionId: row.functionId }, "scheduler: bad schedule");
      this.broken.add(key);
      return;
    }
    if (tickMs === undefined) return;
    const log = this.log.child({ functionId: row.functionId, tick: new Date(tickMs).toISOString() });
    try {
      const claim = await this.schedules.claim(row.functionId, tickMs, row.anchorMs);
      if (!claim) return; // another scheduler fired it, or the schedule changed since it was read
      if (claim.lastCallId !== undefined && (await this.unfinished(claim.lastCallId))) {
        await this.schedules.record(row.functionId, tickMs, { kind: "skipped" });
        log.warn({ callId: claim.lastCallId }, "scheduled run skipped: the previous run is still going");
        return;
      }
      let callId: string;
      try {
        callId = await this.submit(row.functionId);
      } catch (error) {
        await this.schedules.record(row.functionId, tickMs, { kind: "failed", error: String(error) });
        log.error({ err: error }, "scheduled run could not start");
        return;
      }
      await this.schedules.record(row.functionId, tickMs, { kind: "started", callId });
      log.info({ callId }, "scheduled run started");
    } catch (error) {
      log.error({ err: error }, "scheduler: could not fire a tick");
    }
  }
}

/**
 * Throws ApiError BAD_REQUEST if croner refuses the schedule or it never fires (e.g. "0 0 31 2 *"). The
 * SDK checks the syntax already; this is the check of the parser that will run it.
 */
export function checkSchedule(schedule: Schedule, where: string): void {
  if (!("cron" in schedule)) return;
  const written = `Cron(${JSON.stringify(schedule.cron)}, { timezone: ${JSON.stringify(schedule.timezone)} })`;
  let next: Date | null;
  try {
    next = cronOf(schedule).nextRun();
  } catch (error) {
    throw new ApiError("BAD_REQUEST", `${where}: schedule ${written}: ${(error as Error).message}`, { cause: error });
  }
  if (next === null) {
    throw new ApiError(
      "BAD_REQUEST",
      `${where}: schedule ${written} never fires: check that its day-of-month exists in its months`,
    );
  }
}

/**
 * The tick to fire at `nowMs`: the latest tick in (max(anchor, last tick claimed), now], so that after
 * downtime only the latest missed tick fires. Undefined if none is due.
 * @example dueTick({ periodMs: 60_000 }, 0, 60_000, 150_000) === 120_000
 */
export function dueTick(
  schedule: Schedule,
  anchorMs: number,
  lastTickMs: number | undefined,
  nowMs: number,
): number | undefined {
  const sinceMs = Math.max(anchorMs, lastTickMs ?? anchorMs);
  if ("periodMs" in schedule) {
    const tickMs = anchorMs + Math.floor((nowMs - anchorMs) / schedule.periodMs) * schedule.periodMs;
    return tickMs > sinceMs ? tickMs : undefined;
  }
  const cron = cronOf(schedule);
  // The first tick after `since` answers "is one due" cheaply; only then look back from now.
  const first = cron.nextRun(new Date(sinceMs))?.getTime();
  if (first === undefined || first > nowMs) return undefined;
  // previousRuns is strictly before its reference: +1 ms includes a tick at exactly now.
  const latest = cron.previousRuns(1, new Date(nowMs + 1))[0]?.getTime() ?? first;
  return latest <= nowMs ? Math.max(first, latest) : first;
}

/** The first tick strictly after `afterMs` (and after the anchor), or undefined if it never fires again. */
export function nextRun(schedule: Schedule, anchorMs: number, afterMs: number): number | undefined {
  const fromMs = Math.max(anchorMs, afterMs);
  if ("periodMs" in schedule) {
    return anchorMs + (Math.floor((fromMs - anchorMs) / schedule.periodMs) + 1) * schedule.periodMs;
  }
  return cronOf(schedule).nextRun(new Date(fromMs))?.getTime();
}

/** Parsed expressions, by timezone and expression: every second each due schedule is looked at. */
const crons = new Map<string, Cron>();

function cronOf(schedule: { cron: string; timezone: string }): Cron {
  const key = `${schedule.timezone} ${schedule.cron}`;
  let cron = crons.get(key);
  if (!cron) {
    // Without a callback croner schedules nothing: it only computes times.
    cron = new Cron(schedule.cron, { timezone: schedule.timezone, mode: "5-or-6-parts" });
    if (crons.size >= 1000) crons.clear();
    crons.set(key, cron);
  }
  return cron;
}
