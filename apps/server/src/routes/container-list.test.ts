import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { FsBlobStore } from "@skiff/blob";
import { appRoutes, containerRoutes, type ServerToWorker } from "@skiff/protocol";
import { openPglite, Store } from "@skiff/store";
import pino from "pino";
import { Client } from "skiff/plumbing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fakeWorker, testSpec } from "../engine/test-spec.js";
import { type RunningServer, startServer } from "../server.js";

/** Polls `check` every 10 ms until it holds (at most 5 s). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10);
  expect(check()).toBe(true);
}

/** `GET /v1/containers` through the typed client, with a worker played by the test. */
describe("the container list", () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let client: Client;
  let workspace: string;
  const { worker, take } = fakeWorker();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-container-list-"));
    store = new Store(await openPglite());
    server = await startServer({ store, blobs: new FsBlobStore(join(dir, "blobs")), log: pino({ level: "silent" }) });
    workspace = (await server.tokens.createWorkspace("a")).id;
    const token = await server.tokens.create({ kind: "user", name: "a", workspace, admin: true });
    client = new Client({ serverUrl: server.url, token: token.credential });
    await server.control.workerConnected(worker, "process", [], []);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("shows how each container started, each phase's time with the server's placement, and its first input", async () => {
    const bundleHash = await client.putBlob(new TextEncoder().encode("export const a = 1;"));
    const manifest = { name: "svc", functions: [testSpec({ name: "f", minContainers: 1 })] };
    const deployed = await client.call(appRoutes.deploy, { body: { manifest, bundleHash } });
    let start: Extract<ServerToWorker, { t: "start" }> | undefined;
    await until(() => {
      start ??= take("start")[0];
      return start !== undefined;
    });
    const containerId = start!.containerId;
    const listed = async () => (await client.call(containerRoutes.list)).containers;
    expect(await listed()).toMatchObject([{ id: containerId, state: "starting" }]);
    expect((await listed())[0]!.start).toBeUndefined();

    // The worker took 40 ms of the 60 or more since the server decided: the rest is placement.
    await sleep(60);
    const phases = { prepare: 5, create: 10, boot: 20, load: 5 };
    await server.control.workerMessage(worker, { t: "started", containerId, start: { kind: "booted", phases } });
    const [running] = await listed();
    expect(running).toMatchObject({ id: containerId, state: "running", start: { kind: "booted", phases } });
    expect(running!.start!.phases.placement).toBeGreaterThanOrEqual(20);
    expect(running!.firstInputMs).toBeUndefined();

    // Its first input finishes: how long after it was ready is noted, once.
    await server.control.submit(
      {
        t: "submit",
        rid: 1,
        functionId: deployed.functions.f!,
        callId: "00000000-0000-4000-8000-000000000001",
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args: { inline: new Uint8Array([0x80]) } }],
      },
      undefined,
      { workspace },
    );
    await server.control.workerMessage(worker, { t: "claim", rid: 1, containerId, max: 1 });
    let inputs: Extract<ServerToWorker, { t: "inputs" }>[] = [];
    await until(() => {
      inputs = [...inputs, ...take("inputs")];
      return inputs.some((message) => message.inputs.length > 0);
    });
    const input = inputs.flatMap((message) => message.inputs)[0]!;
    await server.control.workerMessage(worker, {
      t: "outputs",
      seq: 1,
      outputs: [
        {
          inputId: input.inputId,
          attempt: input.attempt,
          status: "success",
          retryable: true,
          infra: false,
          data: { inline: new Uint8Array([0x01]) },
        },
      ],
    });
    const [served] = await listed();
    expect(served!.firstInputMs).toBeGreaterThanOrEqual(0);
    // Stored too: a server restart or a worker's reconnect finds them again.
    const stored = async () => (await store.fleet.liveContainers())[0];
    for (let i = 0; i < 500 && (await stored())?.firstInputMs === undefined; i++) await sleep(10);
    expect(await stored()).toMatchObject({
      id: containerId,
      start: running!.start,
      firstInputMs: served!.firstInputMs,
    });
  });
});
