import { randomUUID } from "node:crypto";
import type { FunctionSpec, Schedule } from "@skiff/protocol";
import { type Db, openPglite, type ScheduleStore, Store } from "@skiff/store";
import pino from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { checkSchedule, dueTick, nextRun, Scheduler } from "./scheduler.js";

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const MINUTE = 60_000;
const PARIS_3AM: Schedule = { cron: "0 3 * * *", timezone: "Europe/Paris" };

describe("Scheduler", () => {
  let db: Db;
  let schedules: ScheduleStore;
  let clock: number;
  /** Runs started, with the clock when each started. */
  let runs: { functionId: string; callId: string; atMs: number }[];
  let going: Set<string>;

  beforeAll(async () => {
    db = await openPglite();
    const store = new Store(db);
    await store.migrate();
    schedules = store.schedules;
  });
  afterAll(async () => {
    await db.close();
  });
  beforeEach(async () => {
    await db.exec("DELETE FROM schedules; DELETE FROM functions; DELETE FROM apps;");
    clock = 0;
    runs = [];
    going = new Set();
  });

  function scheduler(options: { submit?: (functionId: string) => Promise<string> } = {}): Scheduler {
    return new Scheduler({
      schedules,
      now: () => clock,
      submit:
        options.submit ??
        (async (functionId) => {
          const callId = randomUUID();
          runs.push({ functionId, callId, atMs: clock });
          going.add(callId);
          return callId;
        }),
      unfinished: (callId) => going.has(callId),
      log: pino({ level: "silent" }),
    });
  }

  /** Deploys an app with one scheduled function at `atMs`; returns the function's id. */
  async function deploy(schedule: Schedule, atMs: number, on = scheduler()): Promise<string> {
    const appId = `ap-${randomUUID()}`;
    const functionId = `fu-${randomUUID()}`;
    await db.query(
      "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, 'ws-local', $2, 'main', 'deployed', 'running', 'h')",
      [appId, `app-${appId}`],
    );
    await db.query("INSERT INTO functions (id, app_id, name, spec) VALUES ($1, $2, 'job', '{}')", [functionId, appId]);
    clock = atMs;
    await on.sync(appId, [{ id: functionId, spec: { name: "job", schedule } as FunctionSpec }]);
    return functionId;
  }

  const finishAll = () => going.clear();

  /**
   * Ticks at `from`, then every `stepMs` up to `to`; returns when runs started (ISO). Runs finish before
   * the next tick unless `keepGoing`.
   */
  async function tickThrough(
    on: Scheduler,
    fromMs: number,
    toMs: number,
    stepMs: number,
    keepGoing = false,
  ): Promise<string[]> {
    const before = runs.length;
    for (clock = fromMs; clock <= toMs; clock += stepMs) {
      await on.tick();
      if (!keepGoing) finishAll();
    }
    return runs.slice(before).map((run) => iso(run.atMs));
  }

  it("fires a cron in Europe/Paris at 03:00 local: 02:00 UTC in winter, 01:00 UTC in summer", async () => {
    const s = scheduler();
    await deploy(PARIS_3AM, at("2025-01-15T00:00:00Z"), s);
    clock = at("2025-01-15T01:59:59.999Z");
    await s.tick();
    expect(runs).toEqual([]);
    clock = at("2025-01-15T02:00:00.000Z");
    await s.tick();
    await s.tick();
    expect(runs.map((run) => iso(run.atMs))).toEqual(["2025-01-15T02:00:00.000Z"]);
    finishAll();
    // Not at 03:00 UTC (the expression read in UTC), nor at any other minute of the day.
    expect(await tickThrough(s, at("2025-01-15T02:01:00Z"), at("2025-01-16T01:59:00Z"), MINUTE)).toEqual([]);
    clock = at("2025-01-15T12:00:00Z");
    const [view] = await s.list();
    expect(view).toMatchObject({ lastOutcome: "started", lastRunMs: at("2025-01-15T02:00:00Z") });
    expect(iso(view!.nextRunMs!)).toBe("2025-01-16T02:00:00.000Z");

    runs = [];
    await db.query("UPDATE apps SET state = 'stopped'");
    const summer = scheduler();
    await deploy(PARIS_3AM, at("2025-07-15T00:00:00Z"), summer);
    clock = at("2025-07-15T00:59:59.999Z");
    await summer.tick();
    expect(runs).toEqual([]);
    expect(await tickThrough(summer, at("2025-07-15T01:00:00Z"), at("2025-07-15T04:00:00Z"), MINUTE)).toEqual([
      "2025-07-15T01:00:00.000Z",
    ]);
  });

  it("keeps to local time across DST changes: once a day, including the days the clocks move", async () => {
    const s = scheduler();
    // 02:30 does not exist on 2025-03-30 and happens twice on 2025-10-26 in Paris.
    const halfPastTwo: Schedule = { cron: "30 2 * * *", timezone: "Europe/Paris" };
    await deploy(halfPastTwo, at("2025-03-28T12:00:00Z"), s);
    const spring = await tickThrough(s, at("2025-03-29T00:00:00Z"), at("2025-03-31T23:55:00Z"), 5 * MINUTE);
    expect(spring).toEqual(["2025-03-29T01:30:00.000Z", "2025-03-30T01:00:00.000Z", "2025-03-31T00:30:00.000Z"]);
    await db.query("UPDATE apps SET state = 'stopped'");
    await deploy(halfPastTwo, at("2025-10-24T12:00:00Z"), s);
    const autumn = await tickThrough(s, at("2025-10-25T00:00:00Z"), at("2025-10-27T23:55:00Z"), 5 * MINUTE);
    expect(autumn).toHaveLength(3);
    expect(autumn[0]).toBe("2025-10-25T00:30:00.000Z");
    expect(autumn[2]).toBe("2025-10-27T01:30:00.000Z");
  });

  it("fires each tick once when two schedulers share one store", async () => {
    const [a, b] = [scheduler(), scheduler()];
    const t0 = at("2025-01-15T00:00:00Z");
    const functionId = await deploy({ periodMs: MINUTE }, t0, a);
    await deploy({ cron: "*/5 * * * *", timezone: "UTC" }, t0, a);
    for (clock = t0; clock <= t0 + 30 * MINUTE; clock += 15_000) {
      await Promise.all([a.tick(), b.tick(), a.tick(), b.tick()]);
      finishAll();
    }
    const period = runs.filter((run) => run.functionId === functionId).map((run) => run.atMs - t0);
    expect(period).toEqual(Array.from({ length: 30 }, (_, i) => (i + 1) * MINUTE));
    const cron = runs.filter((run) => run.functionId !== functionId).map((run) => iso(run.atMs));
    expect(cron).toEqual(Array.from({ length: 6 }, (_, i) => iso(t0 + (i + 1) * 5 * MINUTE)));
  });

  it("fires a period every period from when it was deployed", async () => {
    const s = scheduler();
    const t0 = at("2025-01-15T10:00:07.250Z");
    const functionId = await deploy({ periodMs: 90_000 }, t0, s);
    const started: number[] = [];
    for (clock = t0; clock <= t0 + 10 * MINUTE; clock += 250) {
      await s.tick();
      finishAll();
    }
    for (const run of runs) started.push(run.atMs - t0);
    expect(started).toEqual([1, 2, 3, 4, 5, 6].map((k) => k * 90_000));
    expect(runs.every((run) => run.functionId === functionId)).toBe(true);
    const [view] = await s.list();
    expect(view).toMatchObject({ anchorMs: t0, lastRunMs: t0 + 540_000, nextRunMs: t0 + 630_000 });
  });

  it("skips a tick while the previous run is still going, and records it", async () => {
    const s = scheduler();
    const t0 = at("2025-01-15T10:00:00Z");
    await deploy({ periodMs: MINUTE }, t0, s);
    expect(await tickThrough(s, t0, t0 + 3 * MINUTE, 10_000, true)).toEqual([iso(t0 + MINUTE)]);
    const [skipped] = await s.list();
    expect(skipped).toMatchObject({
      lastTickMs: t0 + 3 * MINUTE,
      lastOutcome: "skipped",
      skippedTicks: 2,
      lastRunMs: t0 + MINUTE,
      lastCallId: runs[0]!.callId,
    });
    finishAll();
    expect(await tickThrough(s, t0 + 3 * MINUTE + 10_000, t0 + 4 * MINUTE, 10_000)).toEqual([iso(t0 + 4 * MINUTE)]);
    expect((await s.list())[0]).toMatchObject({ lastOutcome: "started", skippedTicks: 2 });
  });

  it("after downtime, fires once for the latest missed tick, never a burst", async () => {
    const s = scheduler();
    const t0 = at("2025-01-10T12:00:00Z");
    await deploy({ periodMs: MINUTE }, t0, s);
    await deploy(PARIS_3AM, t0, s);
    clock = t0 + MINUTE;
    await s.tick();
    expect(runs).toHaveLength(1);
    finishAll();
    runs = [];
    // Down from 12:01 on the 10th to 05:00:30 on the 15th (UTC): 5 nightly ticks and thousands of minutes missed.
    clock = at("2025-01-15T05:00:30Z");
    await s.tick();
    await s.tick();
    const views = await s.list();
    expect(runs).toHaveLength(2);
    expect(views.map((view) => iso(view.lastRunMs!)).sort()).toEqual([
      "2025-01-15T02:00:00.000Z",
      "2025-01-15T05:00:00.000Z",
    ]);
    finishAll();
    expect(await tickThrough(s, clock, at("2025-01-15T05:01:00Z"), 10_000)).toEqual(["2025-01-15T05:01:00.000Z"]);
  });

  it("never fires ticks from before the schedule was deployed, nor again on an unchanged redeploy", async () => {
    const s = scheduler();
    // Deployed at 02:30 UTC, after that day's 03:00 Paris tick (02:00 UTC).
    const functionId = await deploy(PARIS_3AM, at("2025-01-15T02:30:00Z"), s);
    expect(await tickThrough(s, at("2025-01-15T02:30:00Z"), at("2025-01-16T01:59:00Z"), 10 * MINUTE)).toEqual([]);
    clock = at("2025-01-16T02:00:00Z");
    await s.tick();
    expect(runs).toHaveLength(1);
    finishAll();
    const [view] = await s.list();
    clock = at("2025-01-16T02:10:00Z");
    await s.sync(view!.appId, [{ id: functionId, spec: { name: "job", schedule: PARIS_3AM } as FunctionSpec }]);
    await s.tick();
    expect(runs).toHaveLength(1);
    expect((await s.list())[0]).toMatchObject({ anchorMs: at("2025-01-15T02:30:00Z") });
  });

  it("records a run that could not start, and fires nothing for stopped apps", async () => {
    const failing = scheduler({
      submit: async () => {
        throw new Error("no such function");
      },
    });
    const t0 = at("2025-01-15T10:00:00Z");
    await deploy({ periodMs: MINUTE }, t0, failing);
    clock = t0 + MINUTE;
    await failing.tick();
    const [view] = await failing.list();
    expect(view).toMatchObject({ lastOutcome: "failed", lastError: "Error: no such function", lastRunMs: undefined });

    await db.query("UPDATE apps SET state = 'stopped'");
    const s = scheduler();
    expect(await tickThrough(s, t0 + 2 * MINUTE, t0 + 5 * MINUTE, MINUTE)).toEqual([]);
  });

  it("runs its timer until stopped", async () => {
    const s = new Scheduler({
      schedules,
      now: () => clock,
      submit: async () => {
        runs.push({ functionId: "", callId: randomUUID(), atMs: clock });
        return randomUUID();
      },
      unfinished: () => false,
      log: pino({ level: "silent" }),
      intervalMs: 10,
    });
    await deploy({ periodMs: 1000 }, 0, s);
    clock = 1000;
    s.start();
    await expect.poll(() => runs.length).toBe(1);
    await s.stop();
    clock = 2000;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(runs).toHaveLength(1);
  });

  it("refuses schedules croner cannot run, before writing anything", async () => {
    expect(() => checkSchedule({ cron: "0 0 31 2 *", timezone: "UTC" }, 'function "f"')).toThrow(
      /function "f": schedule Cron\("0 0 31 2 \*", { timezone: "UTC" }\) never fires/,
    );
    expect(() => checkSchedule({ cron: "0 3 * * *", timezone: "Mars/Base" }, 'function "f"')).toThrow(
      expect.objectContaining({ code: "BAD_REQUEST", message: expect.stringMatching(/Mars\/Base/) }),
    );
    expect(() => checkSchedule({ cron: "61 * * * *", timezone: "UTC" }, "f")).toThrow(/minute/);
    expect(() => checkSchedule({ periodMs: 1000 }, "f")).not.toThrow();
    await expect(deploy({ cron: "0 0 31 2 *", timezone: "UTC" }, 0)).rejects.toThrow(/never fires/);
    expect(await schedules.list()).toEqual([]);
  });
});

describe("dueTick and nextRun", () => {
  it("pick the latest tick due and the next one, for periods and crons", () => {
    expect(dueTick({ periodMs: MINUTE }, 0, undefined, 59_999)).toBeUndefined();
    expect(dueTick({ periodMs: MINUTE }, 0, undefined, 150_000)).toBe(120_000);
    expect(dueTick({ periodMs: MINUTE }, 0, 120_000, 150_000)).toBeUndefined();
    expect(nextRun({ periodMs: MINUTE }, 0, 120_000)).toBe(180_000);
    expect(nextRun({ periodMs: MINUTE }, 1000, -5)).toBe(61_000);
    const anchor = at("2025-01-01T00:00:00Z");
    expect(iso(dueTick(PARIS_3AM, anchor, undefined, at("2025-01-20T12:00:00Z"))!)).toBe("2025-01-20T02:00:00.000Z");
    expect(dueTick(PARIS_3AM, anchor, at("2025-01-20T02:00:00Z"), at("2025-01-20T12:00:00Z"))).toBeUndefined();
    expect(iso(nextRun(PARIS_3AM, anchor, at("2025-03-29T12:00:00Z"))!)).toBe("2025-03-30T01:00:00.000Z");
    expect(nextRun({ cron: "0 0 0 1 1 *", timezone: "UTC" }, anchor, anchor)).toBe(at("2026-01-01T00:00:00Z"));
  });
});
