import { randomUUID } from "node:crypto";
import type { Schedule } from "@skiff/protocol";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Db } from "./db.js";
import { openPglite } from "./pglite/driver.js";
import { openPostgres } from "./postgres/driver.js";
import type { ScheduleStore } from "./schedules.js";
import { Store } from "./store.js";
import { createTestDatabase, postgresReachable } from "./testing/postgres-fixture.js";

const NIGHTLY: Schedule = { cron: "0 3 * * *", timezone: "Europe/Paris" };
const HOURLY: Schedule = { periodMs: 3_600_000 };
const T0 = Date.parse("2025-01-15T00:00:00Z");

interface Opened {
  db: Db;
  /** Another connection to the same database (the same one where there is only one). */
  connect: () => Promise<Db>;
  dispose: () => Promise<void>;
}

/** One suite both drivers pass. */
function describeScheduleStore(name: string, open: () => Promise<Opened>) {
  describe(`schedule store on ${name}`, () => {
    let opened: Opened;
    let schedules: ScheduleStore;
    let appId: string;
    let fn: (name: string) => Promise<string>;

    beforeAll(async () => {
      opened = await open();
      const store = new Store(opened.db);
      await store.migrate();
      schedules = store.schedules;
    });
    afterAll(async () => {
      await opened.db.close();
      await opened.dispose();
    });

    async function addApp(mode: "deployed" | "ephemeral" = "deployed"): Promise<string> {
      const id = `ap-${randomUUID()}`;
      await opened.db.query(
        "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, 'ws-local', $2, 'main', $3, 'running', 'h')",
        [id, `app-${id}`, mode],
      );
      return id;
    }

    beforeEach(async () => {
      const app = await addApp();
      appId = app;
      fn = async (fname: string) => {
        const id = `fu-${randomUUID()}`;
        await opened.db.query("INSERT INTO functions (id, app_id, name, spec) VALUES ($1, $2, $3, '{}')", [
          id,
          app,
          fname,
        ]);
        return id;
      };
    });

    const byFunction = async (functionId: string) =>
      (await schedules.list({ appId })).find((row) => row.functionId === functionId);

    it("syncs an app's schedules at deploy, keeping unchanged ones and restarting changed ones", async () => {
      const [a, b] = [await fn("a"), await fn("b")];
      await schedules.sync(appId, [{ functionId: a, schedule: NIGHTLY }], T0);
      expect(await schedules.list({ appId })).toEqual([
        {
          functionId: a,
          appId,
          functionName: "a",
          schedule: NIGHTLY,
          anchorMs: T0,
          lastTickMs: undefined,
          lastOutcome: undefined,
          lastError: undefined,
          lastRunMs: undefined,
          lastCallId: undefined,
          skippedTicks: 0,
        },
      ]);
      const [stored] = await opened.db.query<{ type: string }>(
        "SELECT jsonb_typeof(spec) AS type FROM schedules WHERE function_id = $1",
        [a],
      );
      expect(stored?.type).toBe("object");
      const callId = randomUUID();
      expect(await schedules.claim(a, T0 + 1000, T0)).toEqual({ lastCallId: undefined });
      await schedules.record(a, T0 + 1000, { kind: "started", callId });
      expect(await schedules.claim(a, T0 + 2000, T0)).toEqual({ lastCallId: callId });
      await schedules.record(a, T0 + 2000, { kind: "skipped" });

      // Redeployed unchanged (same spec, keys in another order): anchor and history stay.
      await schedules.sync(
        appId,
        [
          { functionId: a, schedule: { timezone: "Europe/Paris", cron: "0 3 * * *" } as Schedule },
          { functionId: b, schedule: HOURLY },
        ],
        T0 + 5000,
      );
      expect(await byFunction(a)).toMatchObject({
        anchorMs: T0,
        lastTickMs: T0 + 2000,
        lastOutcome: "skipped",
        lastRunMs: T0 + 1000,
        lastCallId: callId,
        skippedTicks: 1,
      });
      expect(await byFunction(b)).toMatchObject({ functionName: "b", schedule: HOURLY, anchorMs: T0 + 5000 });

      // Changed: a new anchor, no tick claimed, the count starts over; the latest run stays.
      await schedules.sync(appId, [{ functionId: a, schedule: { ...NIGHTLY, timezone: "UTC" } }], T0 + 9000);
      expect(await byFunction(a)).toMatchObject({
        schedule: { ...NIGHTLY, timezone: "UTC" },
        anchorMs: T0 + 9000,
        lastTickMs: undefined,
        skippedTicks: 0,
        lastRunMs: T0 + 1000,
        lastCallId: callId,
      });
      expect(await byFunction(b)).toBeUndefined();

      await schedules.sync(appId, [], T0 + 10_000);
      expect(await schedules.list({ appId })).toEqual([]);
    });

    it("lets exactly one of several racing claimers have a tick", async () => {
      const a = await fn("a");
      await schedules.sync(appId, [{ functionId: a, schedule: HOURLY }], T0);
      const others = await Promise.all([opened.connect(), opened.connect()]);
      const stores = [schedules, ...others.map((db) => new Store(db).schedules)];
      try {
        for (const tick of [T0 + 3_600_000, T0 + 7_200_000]) {
          const claims = await Promise.all(
            Array.from({ length: 12 }, (_, i) => stores[i % stores.length]!.claim(a, tick, T0)),
          );
          expect(claims.filter((claim) => claim !== undefined)).toHaveLength(1);
        }
      } finally {
        for (const db of others) if (db !== opened.db) await db.close();
      }
      // A tick at or before the latest claimed one, or at or before the anchor, is never claimed again.
      expect(await schedules.claim(a, T0 + 7_200_000, T0)).toBeUndefined();
      expect(await schedules.claim(a, T0 + 3_600_000, T0)).toBeUndefined();
      expect(await byFunction(a)).toMatchObject({ lastTickMs: T0 + 7_200_000 });
    });

    it("refuses ticks before the anchor, of a redeployed schedule, or of an app that does not run deployed", async () => {
      const a = await fn("a");
      await schedules.sync(appId, [{ functionId: a, schedule: HOURLY }], T0);
      expect(await schedules.claim(a, T0, T0)).toBeUndefined();
      expect(await schedules.claim(a, T0 - 1000, T0)).toBeUndefined();
      // Read with an older anchor: the schedule changed since.
      expect(await schedules.claim(a, T0 + 3_600_000, T0 - 60_000)).toBeUndefined();

      const ephemeral = await addApp("ephemeral");
      await schedules.sync(ephemeral, [{ functionId: `fu-${randomUUID()}`, schedule: HOURLY }], T0);
      const active = await schedules.active();
      expect(active.some((row) => row.functionId === a)).toBe(true);
      expect(active.some((row) => row.appId === ephemeral)).toBe(false);

      await opened.db.query("UPDATE apps SET state = 'stopped' WHERE id = $1", [appId]);
      expect((await schedules.active()).some((row) => row.functionId === a)).toBe(false);
      expect(await schedules.claim(a, T0 + 3_600_000, T0)).toBeUndefined();
    });

    it("records outcomes: the latest run survives later skipped or failed ticks", async () => {
      const a = await fn("a");
      await schedules.sync(appId, [{ functionId: a, schedule: HOURLY }], T0);
      const first = randomUUID();
      await schedules.claim(a, T0 + 1000, T0);
      await schedules.record(a, T0 + 1000, { kind: "started", callId: first });
      await schedules.claim(a, T0 + 2000, T0);
      await schedules.record(a, T0 + 2000, { kind: "skipped" });
      await schedules.claim(a, T0 + 3000, T0);
      await schedules.record(a, T0 + 3000, { kind: "skipped" });
      expect(await byFunction(a)).toMatchObject({
        lastTickMs: T0 + 3000,
        lastOutcome: "skipped",
        skippedTicks: 2,
        lastRunMs: T0 + 1000,
        lastCallId: first,
      });
      await schedules.claim(a, T0 + 4000, T0);
      await schedules.record(a, T0 + 4000, { kind: "failed", error: "app stopped" });
      expect(await byFunction(a)).toMatchObject({ lastOutcome: "failed", lastError: "app stopped", lastCallId: first });

      // A run started for a tick that is no longer the latest is still the latest run; the outcome stays.
      await schedules.claim(a, T0 + 6000, T0);
      const late = randomUUID();
      await schedules.record(a, T0 + 5000, { kind: "started", callId: late });
      await schedules.record(a, T0 + 5000, { kind: "skipped" });
      expect(await byFunction(a)).toMatchObject({
        lastTickMs: T0 + 6000,
        lastOutcome: undefined,
        lastRunMs: T0 + 5000,
        lastCallId: late,
        skippedTicks: 2,
      });
    });

    it("removes the schedules of functions and of stopped apps", async () => {
      const [a, b] = [await fn("a"), await fn("b")];
      await schedules.sync(
        appId,
        [
          { functionId: a, schedule: HOURLY },
          { functionId: b, schedule: NIGHTLY },
        ],
        T0,
      );
      await schedules.remove([a]);
      expect((await schedules.list({ appId })).map((row) => row.functionId)).toEqual([b]);
      await schedules.removeApp(appId);
      expect(await schedules.list({ appId })).toEqual([]);
    });
  });
}

describeScheduleStore("pglite", async () => {
  const db = await openPglite();
  return { db, connect: async () => db, dispose: async () => {} };
});

describe.skipIf(!(await postgresReachable()))("postgres", () => {
  describeScheduleStore("postgres", async () => {
    const database = await createTestDatabase();
    return {
      db: await openPostgres(database.url),
      connect: () => openPostgres(database.url, { max: 2 }),
      dispose: database.drop,
    };
  });
});
