import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import {
  appRoutes,
  containerRoutes,
  environmentRoutes,
  functionRoutes,
  healthRoute,
  secretRoutes,
  tokenRoutes,
  workspaceRoutes,
} from "@skiff/protocol";
import { openPglite, SecretBox, Store } from "@skiff/store";
import pino from "pino";
import { Client } from "skiff/plumbing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testSpec } from "../engine/test-spec.js";
import { type RunningServer, startServer } from "../server.js";

/** The server's answers, as the typed client reads them through each route's response schema. */
describe("the typed client against the server", () => {
  let dir: string;
  let server: RunningServer;
  let client: Client;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-typed-client-"));
    const keyFile = join(dir, "master.key");
    const store = new Store(await openPglite(), { box: await SecretBox.load({ keyFile }) });
    server = await startServer({
      store,
      blobs: new FsBlobStore(join(dir, "blobs")),
      log: pino({ level: "silent" }),
      secrets: { store: store.secrets, keyFile },
    });
    const workspace = await server.tokens.createWorkspace("a");
    const token = await server.tokens.create({ kind: "user", name: "a", workspace: workspace.id, admin: true });
    client = new Client({ serverUrl: server.url, token: token.credential });
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("reads the answers of tokens, workspaces, environments and secrets", async () => {
    expect(await client.call(healthRoute)).toEqual({ ok: true, workers: 0 });
    const me = await client.call(tokenRoutes.whoami);
    expect(me).toMatchObject({ kind: "user", admin: true, workspace: { name: "a" } });
    const created = await client.call(tokenRoutes.create, { body: { name: "ci" } });
    expect(created.token).toMatchObject({ name: "ci", kind: "user", admin: false });
    expect(typeof created.token.createdAt).toBe("string");
    const { tokens } = await client.call(tokenRoutes.list);
    expect(tokens.map((t) => t.name)).toContain("ci");
    expect(await client.call(tokenRoutes.revoke, { params: { id: created.token.id } })).toEqual({ ok: true });
    expect((await client.call(tokenRoutes.list, { query: { kind: "worker" } })).tokens).toEqual([]);

    const other = await client.call(workspaceRoutes.create, { body: { name: "b" } });
    expect(other.workspace.name).toBe("b");
    expect((await client.call(workspaceRoutes.list)).workspaces.map((w) => w.name)).toEqual(
      expect.arrayContaining(["a", "b"]),
    );

    await client.call(environmentRoutes.create, { body: { name: "staging" } });
    const { environments } = await client.call(environmentRoutes.list);
    expect(environments.map((e) => e.name)).toContain("staging");
    const { secret } = await client.call(secretRoutes.create, {
      body: { env: "staging", name: "db", values: { PASSWORD: "p" } },
    });
    expect(secret).toMatchObject({ name: "db", keys: ["PASSWORD"] });
    expect((await client.call(secretRoutes.list, { query: { env: "staging" } })).secrets).toHaveLength(1);
    await client.call(secretRoutes.delete, { params: { name: "db" }, query: { env: "staging" } });
    await client.call(environmentRoutes.delete, { params: { name: "staging" } });
    expect(await client.call(secretRoutes.rotateKey)).toMatchObject({ secrets: 0, localSecrets: 0, skipped: 0 });
  });

  it("reads the answers of apps and functions, and throws the server's refusals as they were", async () => {
    const bundle = new TextEncoder().encode("export const a = 1;");
    const bundleHash = await client.putBlob(bundle);
    expect(bundleHash).toBe(createHash("sha256").update(bundle).digest("hex"));
    const manifest = { name: "svc", functions: [testSpec({ name: "f", schedule: { periodMs: 60_000 } })] };
    const first = await client.call(appRoutes.deploy, { body: { manifest, bundleHash } });
    expect(first).toMatchObject({ version: 1, previous: null });
    expect(await client.call(appRoutes.deploy, { body: { manifest, bundleHash } })).toMatchObject({ version: 2 });

    const { app } = await client.call(appRoutes.get, { params: { app: "svc" } });
    expect(app).toMatchObject({ id: first.appId, mode: "deployed", state: "running", version: 2 });
    expect((await client.call(appRoutes.list)).apps).toHaveLength(1);
    const history = await client.call(appRoutes.history, { params: { app: "svc" }, query: { env: "main" } });
    expect(history.versions.map((v) => [v.version, v.current])).toEqual([
      [2, true],
      [1, false],
    ]);
    const { schedules } = await client.call(appRoutes.schedules, { params: { app: "svc" } });
    expect(schedules).toMatchObject([{ functionName: "f", schedule: { periodMs: 60_000 }, skippedTicks: 0 }]);
    expect(await client.call(appRoutes.rollback, { params: { app: "svc" }, body: {} })).toMatchObject({
      version: 3,
      previous: 2,
    });

    const found = await client.call(functionRoutes.lookup, { query: { app: "svc", name: "f" } });
    expect(found).toEqual({ functionId: first.functions.f, kind: "function" });
    const settings = await client.call(functionRoutes.updateAutoscaler, {
      params: { id: found.functionId },
      body: { maxContainers: 3 },
    });
    expect(settings).toEqual({ minContainers: 0, maxContainers: 3, bufferContainers: 0, scaledownWindowMs: 60_000 });
    expect(await client.call(containerRoutes.list)).toEqual({ containers: [] });

    const run = await client.call(appRoutes.create, {
      body: { manifest: { name: "once", functions: [testSpec()] }, mode: "ephemeral", bundleHash },
    });
    expect(await client.call(appRoutes.heartbeat, { params: { id: run.appId } })).toEqual({ ok: true });
    // A run takes a new version (`skiff serve` reloading): same app, same function ids by name.
    const reloaded = await client.call(appRoutes.update, {
      params: { id: run.appId },
      body: { manifest: { name: "once", functions: [testSpec(), testSpec({ name: "g" })] }, bundleHash },
    });
    expect(reloaded).toMatchObject({ appId: run.appId, version: 2, previous: 1, functions: run.functions });
    expect(Object.keys(reloaded.functions).sort()).toEqual([Object.keys(run.functions)[0], "g"].sort());
    await expect(
      client.call(appRoutes.update, { params: { id: first.appId }, body: { manifest, bundleHash } }),
    ).rejects.toMatchObject({
      code: "BAD_REQUEST",
      message: "svc is deployed: make its new version with `skiff deploy`",
    });
    expect(await client.call(appRoutes.stop, { params: { app: run.appId } })).toEqual({ ok: true, appId: run.appId });
    await expect(
      client.call(appRoutes.update, {
        params: { id: run.appId },
        body: { manifest: { name: "once", functions: [testSpec()] }, bundleHash },
      }),
    ).rejects.toMatchObject({ code: "NOT_FOUND" });

    await expect(client.call(appRoutes.get, { params: { app: "nope" }, query: { env: "main" } })).rejects.toMatchObject(
      {
        code: "NOT_FOUND",
        message: 'no running app "nope" in environment "main": see `skiff app list`',
      },
    );
  });
});
