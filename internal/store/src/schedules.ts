import type { Schedule } from "@skiff/protocol";
import type { Db } from "./db.js";

/** What became of a claimed tick. */
export type ScheduleOutcome =
  | { kind: "started"; callId: string }
  /** The previous run was still going: this tick did not start another one. */
  | { kind: "skipped" }
  | { kind: "failed"; error: string };

/** A deployed function's schedule and what it did last. Times are ms since the epoch. */
export interface ScheduleRow {
  functionId: string;
  appId: string;
  /** The function's name, for display (undefined if its row is gone). */
  functionName: string | undefined;
  schedule: Schedule;
  /** When this schedule was deployed: ticks at or before it never fire, and periods count from it. */
  anchorMs: number;
  /** The latest tick claimed, whatever its outcome. */
  lastTickMs: number | undefined;
  /** The outcome of `lastTickMs`; undefined while the claimer has not recorded it. */
  lastOutcome: ScheduleOutcome["kind"] | undefined;
  /** Why the latest tick failed to start a run. */
  lastError: string | undefined;
  /** The tick of the latest run started, and its call. */
  lastRunMs: number | undefined;
  lastCallId: string | undefined;
  /** Ticks skipped since the schedule was deployed because a run was still going. */
  skippedTicks: number;
}

interface ScheduleDbRow {
  function_id: string;
  app_id: string;
  function_name: string | null;
  spec: Schedule;
  anchor_ms: number;
  last_tick_ms: number | null;
  last_outcome: ScheduleOutcome["kind"] | null;
  last_error: string | null;
  last_run_ms: number | null;
  last_call_id: string | null;
  skipped_ticks: number;
}

const COLUMNS = `s.function_id, s.app_id, f.name AS function_name, s.spec, s.anchor_ms, s.last_tick_ms, s.last_outcome,
  s.last_error, s.last_run_ms, s.last_call_id, s.skipped_ticks`;
const FROM = "FROM schedules s LEFT JOIN functions f ON f.id = s.function_id";
const LIVE_APP = "SELECT 1 FROM apps a WHERE a.id = s.app_id AND a.state = 'running' AND a.mode = 'deployed'";

/**
 * The schedules of deployed functions. Each tick is claimed with a compare-and-set on `last_tick_ms`, so
 * that when several server replicas (or several schedulers) see the same tick due, exactly one fires it.
 */
export class ScheduleStore {
  constructor(private readonly db: Db) {}

  /**
   * Makes the schedules of an app those given, at deploy: a schedule whose spec is unchanged keeps its
   * anchor and history; a new or changed one is anchored at `nowMs` (its earlier ticks never fire) and
   * its tick count starts over. It keeps its latest run, so that a run still going holds off the next.
   * Schedules of the app's other functions are removed.
   */
  async sync(appId: string, schedules: { functionId: string; schedule: Schedule }[], nowMs: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.query("DELETE FROM schedules WHERE app_id = $1 AND NOT (function_id = ANY($2::text[]))", [
        appId,
        schedules.map((s) => s.functionId),
      ]);
      for (const { functionId, schedule } of schedules) {
        await tx.query(
          `INSERT INTO schedules AS s (function_id, app_id, spec, anchor_ms) VALUES ($1, $2, $3::text::jsonb, $4::float8)
           ON CONFLICT (function_id) DO UPDATE SET app_id = excluded.app_id, spec = excluded.spec,
             anchor_ms = CASE WHEN s.spec = excluded.spec THEN s.anchor_ms ELSE excluded.anchor_ms END,
             last_tick_ms = CASE WHEN s.spec = excluded.spec THEN s.last_tick_ms END,
             skipped_ticks = CASE WHEN s.spec = excluded.spec THEN s.skipped_ticks ELSE 0 END`,
          // As text: postgres.js would encode a string parameter typed jsonb as a JSON string.
          [functionId, appId, JSON.stringify(schedule), nowMs],
        );
      }
    });
  }

  /** Removes the schedules of an app, e.g. when it stops. */
  async removeApp(appId: string): Promise<void> {
    await this.db.query("DELETE FROM schedules WHERE app_id = $1", [appId]);
  }

  /** Removes the schedules of these functions. */
  async remove(functionIds: string[]): Promise<void> {
    if (functionIds.length === 0) return;
    await this.db.query("DELETE FROM schedules WHERE function_id = ANY($1::text[])", [functionIds]);
  }

  /** The schedules to fire: those of running deployed apps. */
  async active(): Promise<ScheduleRow[]> {
    const rows = await this.db.query<ScheduleDbRow>(`SELECT ${COLUMNS} ${FROM} WHERE EXISTS (${LIVE_APP})`);
    return rows.map(toScheduleRow);
  }

  /** Schedules with their latest runs, for display: all of them, or one app's. */
  async list(filter: { appId?: string } = {}): Promise<ScheduleRow[]> {
    const rows = await this.db.query<ScheduleDbRow>(
      `SELECT ${COLUMNS} ${FROM} WHERE $1::text IS NULL OR s.app_id = $1::text ORDER BY s.app_id, f.name, s.function_id`,
      [filter.appId ?? null],
    );
    return rows.map(toScheduleRow);
  }

  /**
   * Claims the tick at `tickMs` of a schedule read with anchor `anchorMs`: true for exactly one caller,
   * and only if no later tick was claimed, the schedule was not redeployed since it was read (its anchor
   * is unchanged), the tick is after the anchor, and the app still runs. The winner gets the call of the
   * latest run, to check that it finished.
   */
  async claim(
    functionId: string,
    tickMs: number,
    anchorMs: number,
  ): Promise<{ lastCallId: string | undefined } | undefined> {
    const [row] = await this.db.query<{ last_call_id: string | null }>(
      `UPDATE schedules s SET last_tick_ms = $2::float8, last_outcome = NULL, last_error = NULL
       WHERE s.function_id = $1 AND s.anchor_ms = $3::float8 AND $2::float8 > s.anchor_ms
         AND (s.last_tick_ms IS NULL OR s.last_tick_ms < $2::float8) AND EXISTS (${LIVE_APP})
       RETURNING s.last_call_id`,
      [functionId, tickMs, anchorMs],
    );
    return row ? { lastCallId: row.last_call_id ?? undefined } : undefined;
  }

  /**
   * Records what became of a claimed tick. A started run is kept as the latest run even if a later tick
   * was claimed meanwhile (it is still going); the outcome is written only while `tickMs` is the latest.
   */
  async record(functionId: string, tickMs: number, outcome: ScheduleOutcome): Promise<void> {
    if (outcome.kind === "started") {
      await this.db.query(
        `UPDATE schedules SET last_call_id = $3, last_run_ms = $2::float8,
           last_outcome = CASE WHEN last_tick_ms = $2::float8 THEN 'started' ELSE last_outcome END,
           last_error = CASE WHEN last_tick_ms = $2::float8 THEN NULL ELSE last_error END
         WHERE function_id = $1 AND (last_run_ms IS NULL OR last_run_ms < $2::float8)`,
        [functionId, tickMs, outcome.callId],
      );
      return;
    }
    await this.db.query(
      `UPDATE schedules SET last_outcome = $3::text, last_error = $4::text,
         skipped_ticks = skipped_ticks + CASE WHEN $3::text = 'skipped' THEN 1 ELSE 0 END
       WHERE function_id = $1 AND last_tick_ms = $2::float8`,
      [functionId, tickMs, outcome.kind, outcome.kind === "failed" ? outcome.error : null],
    );
  }
}

function toScheduleRow(row: ScheduleDbRow): ScheduleRow {
  const optional = (ms: number | null) => (ms === null ? undefined : Number(ms));
  return {
    functionId: row.function_id,
    appId: row.app_id,
    functionName: row.function_name ?? undefined,
    schedule: row.spec,
    anchorMs: Number(row.anchor_ms),
    lastTickMs: optional(row.last_tick_ms),
    lastOutcome: row.last_outcome ?? undefined,
    lastError: row.last_error ?? undefined,
    lastRunMs: optional(row.last_run_ms),
    lastCallId: row.last_call_id ?? undefined,
    skippedTicks: Number(row.skipped_ticks),
  };
}
