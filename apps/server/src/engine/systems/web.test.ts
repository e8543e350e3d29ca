import { openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngineState, type EngineState, type FunctionInfo } from "../state.js";
import { testSpec } from "../test-spec.js";
import type { WorkerConn } from "../workers.js";
import { PoolSystem } from "./pools.js";
import { PoolBusy, WAITING_PER_SLOT, WebSystem } from "./web.js";

const info = (overrides: Partial<FunctionInfo["spec"]> = {}): FunctionInfo => ({
  id: `fn-${Math.random()}`,
  baseId: "fn",
  appId: "ap-1",
  appName: "site",
  workspace: "ws-local",
  env: "main",
  bundleHash: "b",
  spec: testSpec({
    maxInputs: 2,
    web: { kind: "fetch", label: "x", docs: false, requiresProxyAuth: false },
    ...overrides,
  }),
  version: 1,
  stopped: undefined,
  params: undefined,
  overrides: undefined,
});

describe("WebSystem", () => {
  let store: Store;
  let state: EngineState;
  let web: WebSystem;
  let autoscaleAsked = 0;
  const worker: WorkerConn = {
    id: "wk-1",
    name: "w",
    capacity: { cpu: 8, memoryMiB: 8192 },
    containers: new Map(),
    webRelay: { url: "http://127.0.0.1:1", secret: "s".repeat(16) },
    send: () => {},
  };
  const addContainer = (pool: FunctionInfo, id: string, phase: "starting" | "running" = "running") =>
    state.workers.placeContainer(worker, {
      id,
      functionId: pool.id,
      cpu: 1,
      memoryMiB: 512,
      state: phase,
      version: 1,
      stopping: false,
    });

  beforeAll(async () => {
    store = new Store(await openPglite());
    state = createEngineState({ store, log: pino({ level: "silent" }) });
    state.workers.add(worker);
    web = new WebSystem(state, { pools: new PoolSystem(state), requestAutoscale: () => autoscaleAsked++ });
  });
  afterAll(() => store.close());

  it("spreads requests over the least-loaded ready containers, never past maxInputs", async () => {
    const pool = info();
    addContainer(pool, "ct-a");
    addContainer(pool, "ct-b");
    addContainer(pool, "ct-c", "starting");
    const leases = await Promise.all([1, 2, 3, 4].map(() => web.acquire(pool)));
    expect(leases.map((l) => l.containerId).sort()).toEqual(["ct-a", "ct-a", "ct-b", "ct-b"]);
    expect(web.load(pool.id)).toEqual({ pending: 0, running: 4 });
    const fifth = web.acquire(pool);
    expect(web.load(pool.id)).toEqual({ pending: 1, running: 4 });
    leases[0]!.release();
    leases[0]!.release(); // a second release frees nothing more
    expect((await fifth).containerId).toBe(leases[0]!.containerId);
    expect(web.load(pool.id)).toEqual({ pending: 0, running: 4 });
    for (const lease of leases) lease.release();
  });

  it("serves a waiting request when a container becomes ready, and asks the autoscaler for one", async () => {
    const pool = info();
    const asked = autoscaleAsked;
    const waiting = web.acquire(pool);
    expect(autoscaleAsked).toBe(asked + 1);
    expect(web.waitingPools()).toContain(pool.id);
    addContainer(pool, "ct-new");
    web.serveWaiting(pool.id);
    expect((await waiting).containerId).toBe("ct-new");
    expect(web.waitingPools()).not.toContain(pool.id);
  });

  it("refuses at once past its bound, and after the startup timeout, with Retry-After", async () => {
    const pool = info({ maxInputs: 1, startupTimeoutMs: 50 });
    const waiting = Array.from({ length: WAITING_PER_SLOT }, () => web.acquire(pool).catch((error: Error) => error));
    await expect(web.acquire(pool)).rejects.toMatchObject({ code: "UNAVAILABLE", retryAfterS: 1 });
    const timedOut = await Promise.all(waiting);
    expect(timedOut.every((error) => error instanceof PoolBusy && /startupTimeout/.test(error.message))).toBe(true);
    expect(web.load(pool.id).pending).toBe(0);
  });

  it("answers waiting requests of a stopped pool as a new request would: 404", async () => {
    const pool = info();
    const waiting = web.acquire(pool);
    web.refuseWaiting(pool.id);
    await expect(waiting).rejects.toMatchObject({ code: "NOT_FOUND", message: "no web endpoint at this URL" });
    expect(web.waitingPools()).not.toContain(pool.id);
  });

  it("moves the waiting requests of a pool a deploy removed to the pool that took over its label", async () => {
    const before = info();
    const after = info();
    const waiting = [web.acquire(before), web.acquire(before)];
    before.stopped = "was removed in version 2 of its app";
    web.handOver(before, after);
    expect(web.load(before.id).pending).toBe(0);
    expect(web.load(after.id).pending).toBe(2);
    // The autoscaler's round over the removed pool hands nothing more over, and refuses nothing.
    web.refuseWaiting(before.id);
    addContainer(after, "ct-heir");
    web.serveWaiting(after.id);
    const leases = await Promise.all(waiting);
    expect(leases.map((l) => l.containerId)).toEqual(["ct-heir", "ct-heir"]);
    for (const lease of leases) lease.release();
    // A request that resolved the removed pool just before the deploy goes to its heir as well.
    const late = await web.acquire(before);
    expect(late.containerId).toBe("ct-heir");
    late.release();
  });

  it("hands a moved request over again if the heir is replaced too, and keeps its startup deadline", async () => {
    const first = info({ startupTimeoutMs: 80 });
    const second = info();
    const third = info();
    const started = Date.now();
    const waiting = web.acquire(first).catch((error: Error) => error);
    first.stopped = "removed";
    web.handOver(first, second);
    second.stopped = "removed";
    web.handOver(second, third);
    expect(web.load(third.id).pending).toBe(1);
    expect(await waiting).toBeInstanceOf(PoolBusy);
    expect(Date.now() - started).toBeLessThan(1000);
    const gone = new AbortController();
    const late = web.acquire(first, { signal: gone.signal });
    expect(web.load(third.id).pending).toBe(1);
    gone.abort();
    await expect(late).rejects.toMatchObject({ code: "CANCELLED" });
  });

  it("serves an heir's requests from the containers of the pool it took over until its own are ready", async () => {
    const before = info();
    const after = info();
    addContainer(before, "ct-old");
    before.stopped = "was removed in version 2 of its app";
    web.handOver(before, after);
    expect(web.predecessorsOf(after.id)).toEqual([before]);
    expect(web.heirs()).toContain(after.id);
    const lease = await web.acquire(after);
    expect(lease.containerId).toBe("ct-old");
    addContainer(after, "ct-new");
    expect((await web.acquire(after)).containerId).toBe("ct-new");
    lease.release();
    state.workers.dropContainer(worker, "ct-old");
  });

  it("refuses a request for a stopped pool that nothing took over at once, as a new one: 404", async () => {
    const pool = info();
    pool.stopped = "is stopped: run or deploy it again";
    await expect(web.acquire(pool)).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(web.load(pool.id).pending).toBe(0);
  });

  it("forgets a waiting request whose client went away, and skips containers it is told to", async () => {
    const pool = info();
    const gone = new AbortController();
    const waiting = web.acquire(pool, { signal: gone.signal });
    gone.abort();
    await expect(waiting).rejects.toMatchObject({ code: "CANCELLED" });
    expect(web.load(pool.id).pending).toBe(0);
    addContainer(pool, "ct-x");
    addContainer(pool, "ct-y");
    expect((await web.acquire(pool, { exclude: new Set(["ct-x"]) })).containerId).toBe("ct-y");
  });
});
