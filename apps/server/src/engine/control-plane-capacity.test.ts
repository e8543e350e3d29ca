import { randomUUID } from "node:crypto";
import type { FunctionSpec, LogLine, ServerToWorker } from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ControlPlane } from "./control-plane.js";
import { placeContainer, testSpec } from "./test-spec.js";
import type { WorkerConn } from "./workers.js";

/** Placement and capacity: what the engine refuses at once, and what it says while calls wait for room. */
describe("control plane capacity", () => {
  let store: Store;
  let control: ControlPlane;
  let functionId: string;
  let appId: string;

  async function setup(spec: FunctionSpec) {
    store = new Store(await openPglite());
    await store.migrate();
    const { app, functions } = await store.apps.create({
      workspace: LOCAL_WORKSPACE,
      name: "t",
      env: "main",
      mode: "ephemeral",
      bundleHash: "h",
      functions: [spec],
    });
    functionId = functions[0]!.id;
    appId = app.id;
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
  }

  afterEach(async () => {
    await control.stop();
    await store.close();
  });

  async function connect(capacity = { cpu: 2, memoryMiB: 23_962 }) {
    const sent: ServerToWorker[] = [];
    const worker: WorkerConn = { id: "wk-1", name: "one", capacity, containers: new Map(), send: (m) => sent.push(m) };
    await control.workerConnected(worker, "process", [], []);
    return { worker, sent };
  }

  const submit = (id = functionId) =>
    control.submit(
      {
        t: "submit",
        rid: 1,
        functionId: id,
        callId: randomUUID(),
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args: { inline: new Uint8Array() } }],
      },
      undefined,
      { workspace: LOCAL_WORKSPACE },
    );

  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  it("refuses a call no connected worker can ever fit, with the largest worker's capacity", async () => {
    await setup(testSpec({ name: "big", cpu: 64 }));
    await connect();
    await expect(submit()).rejects.toThrow(
      'function "big" asks for 64 CPUs; the only worker has 2 CPUs and 23.4 GiB: lower cpu, or add a larger worker',
    );
    expect(() => control.checkCapacity([testSpec({ name: "m", memoryMiB: 512_000 })])).toThrow(
      /function "m" asks for 500 GiB; the only worker has 2 CPUs and 23.4 GiB: lower memory/,
    );
  });

  it("accepts calls while no worker is connected: they wait for one", async () => {
    await setup(testSpec({ name: "big", cpu: 64 }));
    await expect(submit()).resolves.toBeUndefined();
  });

  it("tells the app's log watchers that a call waits for capacity", async () => {
    await setup(testSpec({ name: "f", cpu: 2, maxContainers: 2 }));
    const { worker } = await connect();
    placeContainer(control, worker, {
      id: "other",
      functionId: "fu-other",
      cpu: 2,
      memoryMiB: 1024,
      state: "running",
      version: 1,
      stopping: false,
    });
    const lines: LogLine[] = [];
    await control.subscribeLogs(LOCAL_WORKSPACE, appId, {
      pushResults: () => {},
      pushLogs: (l) => lines.push(...l),
      endLogs: () => {},
    });
    await submit();
    control.requestAutoscale();
    await settle();
    expect(lines.map((l) => l.line)).toContain(
      'waiting for capacity: function "f" needs 2 CPUs and 512 MiB; 2 of 2 CPUs in use, 1 GiB of 23.4 GiB',
    );
  });

  it("stops an idle container of another pool to make room for waiting work, never one that works or is kept warm", async () => {
    await setup(testSpec({ name: "f", cpu: 2, maxContainers: 1 }));
    const other = await store.apps.create({
      workspace: LOCAL_WORKSPACE,
      name: "warm",
      env: "main",
      mode: "detached",
      bundleHash: "h",
      functions: [testSpec({ name: "idle", cpu: 1 }), testSpec({ name: "kept", cpu: 1, minContainers: 1 })],
    });
    const [idleId, keptId] = other.functions.map((f) => f.id) as [string, string];
    const { worker, sent } = await connect({ cpu: 3, memoryMiB: 4096 });
    const container = (id: string, fn: string) =>
      placeContainer(control, worker, {
        id,
        functionId: fn,
        cpu: 1,
        memoryMiB: 512,
        state: "running",
        version: 1,
        stopping: false,
      });
    container("ct-kept", keptId);
    container("ct-idle", idleId);
    await submit();
    control.requestAutoscale();
    await settle();
    // One CPU is free, f needs two: the idle container goes; the one minContainers keeps stays.
    expect(sent.filter((m) => m.t === "stop").map((m) => m.t === "stop" && m.containerId)).toEqual(["ct-idle"]);
  });

  it("runs a variant from withOptions in its own pool with its own spec; the function's pool is unchanged", async () => {
    await setup(testSpec({ name: "f", maxContainers: 1 }));
    const { sent } = await connect({ cpu: 8, memoryMiB: 8192 });
    const options = Buffer.from(JSON.stringify({ memoryMiB: 2048, cpu: 2 })).toString("base64url");
    const variant = `${functionId}~~${options}`;
    await submit(variant);
    await submit();
    control.requestAutoscale();
    await settle();
    const starts = sent.flatMap((m) => (m.t === "start" ? [m] : []));
    const byPool = new Map(starts.map((m) => [m.functionId, m.spec]));
    expect(byPool.get(variant)).toMatchObject({ name: "f", memoryMiB: 2048, cpu: 2 });
    expect(byPool.get(functionId)).toMatchObject({ name: "f", memoryMiB: 512, cpu: 1 });
    const bad = `${functionId}~~${Buffer.from(JSON.stringify({ gpu: "A10G" })).toString("base64url")}`;
    await expect(submit(bad)).rejects.toThrow(/function "f": withOptions: option "gpu" cannot be changed/);
  });

  it("fails a call whose container ran out of memory while starting with OUT_OF_MEMORY", async () => {
    await setup(testSpec({ name: "f", maxContainers: 1, memoryMiB: 128 }));
    const { worker, sent } = await connect();
    const results: { code?: string }[] = [];
    const callId = randomUUID();
    await control.submit(
      {
        t: "submit",
        rid: 1,
        functionId,
        callId,
        total: 1,
        subscribe: true,
        resent: false,
        inputs: [{ idx: 0, args: { inline: new Uint8Array() } }],
      },
      { pushResults: (_id, r) => results.push(...r), pushLogs: () => {}, endLogs: () => {} },
      { workspace: LOCAL_WORKSPACE },
    );
    control.requestAutoscale();
    await settle();
    const start = sent.find((m) => m.t === "start");
    expect(start).toBeDefined();
    await control.workerMessage(worker, {
      t: "stopped",
      containerId: (start as { containerId: string }).containerId,
      reason: "oom",
      inFlight: [],
      message: "the container ran out of memory (limit 128 MiB) while starting: raise `memory`",
    });
    await settle();
    expect(results).toMatchObject([{ status: "failure", code: "OUT_OF_MEMORY" }]);
  });
});
