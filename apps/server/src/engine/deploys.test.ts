import type { FunctionSpec } from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ControlPlane } from "./control-plane.js";
import { fakeWorker, testSpec } from "./test-spec.js";

const spec = testSpec;

const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/** The engine's side of deploys and scaling, with a worker played by the test. */
describe("deploys and scaling", () => {
  let store: Store;
  let control: ControlPlane;
  const { worker, sent, take } = fakeWorker();

  async function deploy(specs: FunctionSpec[], bundleHash: string) {
    const deployed = await store.apps.deploy({
      workspace: LOCAL_WORKSPACE,
      name: "svc",
      env: "main",
      bundleHash,
      functions: specs,
    });
    await control.deployed(deployed.app, deployed.functions);
    return deployed;
  }

  async function start() {
    store = new Store(await openPglite());
    await store.migrate();
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    (worker.containers as Map<string, unknown>).clear();
    sent.length = 0;
    await control.workerConnected(worker, "process", [], []);
  }

  afterEach(async () => {
    await control?.stop();
    await store?.close();
  });

  const submit = (functionId: string, callId: string) =>
    control.submit(
      {
        t: "submit",
        rid: 1,
        functionId,
        callId,
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args: { inline: new Uint8Array([0x80]) } }],
      },
      undefined,
      { workspace: LOCAL_WORKSPACE },
    );

  it("starts the new version beside the old one and drains the old once the new one runs", async () => {
    await start();
    const v1 = await deploy([spec()], "b1");
    const fid = v1.functions[0]!.id;
    await submit(fid, "00000000-0000-4000-8000-000000000001");
    await settle();
    const [old] = take("start");
    expect(old).toMatchObject({ functionId: fid, bundleHash: "b1" });
    await control.workerMessage(worker, { t: "started", containerId: old!.containerId });

    const v2 = await deploy([spec()], "b2");
    expect(v2.functions[0]!.id).toBe(fid);
    await submit(fid, "00000000-0000-4000-8000-000000000002");
    await settle();
    const [fresh] = take("start");
    expect(fresh).toMatchObject({ functionId: fid, bundleHash: "b2" });
    // Until the new container runs, the old one keeps serving.
    expect(take("stop")).toEqual([]);
    await control.workerMessage(worker, { t: "started", containerId: fresh!.containerId });
    expect(take("stop")).toEqual([{ t: "stop", containerId: old!.containerId, reason: "replaced by version 2" }]);
    // A claim from the old container is told to stop.
    await control.workerMessage(worker, { t: "claim", rid: 7, containerId: old!.containerId, max: 1 });
    expect(take("inputs")).toMatchObject([{ rid: 7, shutdown: true }]);
  });

  it("replaces a web pool's running containers one for one, even with no request in flight", async () => {
    await start();
    const site = { kind: "fetch", label: "site", docs: false, requiresProxyAuth: false } as const;
    const web = spec({ web: site, minContainers: 2, maxContainers: 2 });
    await deploy([web], "b1");
    await settle();
    const old = take("start");
    expect(old).toHaveLength(2);
    for (const { containerId } of old) await control.workerMessage(worker, { t: "started", containerId });

    // minContainers 0 and no request: a function pool would stop its old containers at once; a web pool
    // starts as many new ones and keeps the old ones answering until they are ready.
    await deploy([{ ...web, minContainers: 0 }], "b2");
    await settle();
    const fresh = take("start");
    expect(fresh.map((m) => m.bundleHash)).toEqual(["b2", "b2"]);
    expect(take("stop")).toEqual([]);
    await control.workerMessage(worker, { t: "started", containerId: fresh[0]!.containerId });
    expect(take("stop")).toHaveLength(1);
    await control.workerMessage(worker, { t: "started", containerId: fresh[1]!.containerId });
    const stops = take("stop");
    expect(stops).toHaveLength(1);
    expect(stops[0]).toMatchObject({ reason: "replaced by version 2" });
    await settle();
    expect(take("start")).toEqual([]);
  });

  it("stops the old web containers left over once the new version has all it wants, ready", async () => {
    await start();
    const site = { kind: "fetch", label: "site", docs: false, requiresProxyAuth: false } as const;
    const web = spec({ web: site, minContainers: 2, maxContainers: 2 });
    await deploy([web], "b1");
    await settle();
    for (const { containerId } of take("start")) await control.workerMessage(worker, { t: "started", containerId });
    await deploy([{ ...web, minContainers: 0 }], "b2");
    await settle();
    const [first, second] = take("start");
    await control.workerMessage(worker, { t: "started", containerId: first!.containerId });
    expect(take("stop")).toHaveLength(1);
    // The second new container never starts: the one old container left goes, rather than serve on beside it.
    await control.workerMessage(worker, {
      t: "stopped",
      containerId: second!.containerId,
      reason: "start-failed",
      inFlight: [],
    });
    await settle();
    expect(take("stop")).toMatchObject([{ reason: "replaced by version 2" }]);
  });

  it("fails the waiting inputs of a function a deploy removed", async () => {
    await start();
    const v1 = await deploy([spec({ name: "f" }), spec({ name: "g", maxContainers: 1 })], "b1");
    const g = v1.functions[1]!.id;
    await deploy([spec({ name: "f" })], "b2");
    await expect(submit(g, "00000000-0000-4000-8000-000000000003")).rejects.toThrow(/was removed in version 2/);
  });

  it("keeps minContainers warm with no work, lets idle ones go above it, and follows updateAutoscaler", async () => {
    await start();
    const v1 = await deploy([spec({ minContainers: 1, maxContainers: 3 })], "b1");
    const fid = v1.functions[0]!.id;
    await settle();
    const [warm] = take("start");
    expect(warm).toMatchObject({ functionId: fid });
    await control.workerMessage(worker, { t: "started", containerId: warm!.containerId });
    await control.workerMessage(worker, { t: "idle", containerId: warm!.containerId });
    expect(take("stop")).toEqual([]);
    await control.updateAutoscaler(LOCAL_WORKSPACE, fid, { minContainers: 0 });
    await control.workerMessage(worker, { t: "idle", containerId: warm!.containerId });
    expect(take("stop")).toEqual([{ t: "stop", containerId: warm!.containerId, reason: "idle" }]);
    await expect(control.updateAutoscaler(LOCAL_WORKSPACE, fid, { minContainers: 4 })).rejects.toThrow(
      /maxContainers \(3\) must be at least minContainers \(4\)/,
    );
  });

  it("gives each class parameter set its own pool and refuses undeclared parameters", async () => {
    await start();
    const cls = { methods: ["predict"], parameters: [{ name: "size", type: "string" as const }] };
    const v1 = await deploy([spec({ name: "Model", kind: "class", cls, maxContainers: 2 })], "b1");
    const base = v1.functions[0]!.id;
    const pool = (params: object) => `${base}~${Buffer.from(JSON.stringify(params)).toString("base64url")}`;
    await submit(pool({ size: "large" }), "00000000-0000-4000-8000-000000000004");
    await settle();
    expect(take("start")).toMatchObject([
      { functionId: pool({ size: "large" }), env: { SKIFF_PARAMS: '{"size":"large"}' } },
    ]);
    await expect(submit(pool({ colour: "red" }), "00000000-0000-4000-8000-000000000005")).rejects.toThrow(
      /Model has no parameter "colour" \(its parameters: size\)/,
    );
    await expect(submit(pool({ size: 3 }), "00000000-0000-4000-8000-000000000006")).rejects.toThrow(
      /parameter "size" must be a string, not number/,
    );
  });
});
