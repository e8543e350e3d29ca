import { createHash, randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import { decodeMessage, encodeMessage, PROTOCOL_VERSION } from "@skiff/protocol";
import { openPglite, SecretBox, Store } from "@skiff/store";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { testSpec } from "./engine/test-spec.js";
import { type RunningServer, startServer } from "./server.js";

/** The names a request refers to: workspace A's real ones, or made-up ones that exist nowhere. */
interface Names {
  app: string;
  appId: string;
  /** A detached run's id (a run takes new versions: `skiff serve` reloading). */
  runId: string;
  functionId: string;
  env: string;
  secret: string;
  tokenId: string;
  bundle: string;
  archive: string;
  volume: string;
}

/**
 * Who may call a route:
 * - named: it names something of a workspace; another workspace's token gets the very answer a name that
 *   does not exist gets;
 * - own: a list or a create, which acts in the caller's own workspace and must not show A's things;
 * - admin / worker: admin tokens, or worker tokens, only.
 */
type Kind = "named" | "own" | "admin" | "worker";

interface Case {
  kind: Kind;
  /** A container's token may call it too (calls, their payloads, whoami); it gets 403 everywhere else. */
  container?: boolean;
  request: (n: Names) => { path: string; body?: unknown; raw?: Uint8Array };
  /** Runs after the others' successful calls (they destroy what those need). */
  late?: number;
}

const bundleBytes = new TextEncoder().encode("export const a = 1; // workspace A's bundle");
const archiveBytes = new TextEncoder().encode("workspace A's local files");
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const manifest = { name: "svc", functions: [testSpec({ name: "f" })] };
const run = { name: "job", functions: [testSpec({ name: "g" })] };

/** Every route of the API, and how to call it. A route missing here fails the test. */
const CASES: Record<string, Case> = {
  "POST /v1/images/build": {
    kind: "named",
    request: (n) => ({
      path: "/v1/images/build",
      body: { image: { ...testSpec().image, mounts: [{ archive: n.archive, target: "/assets" }] } },
    }),
  },
  "GET /v1/layers/:key": { kind: "worker", request: () => ({ path: `/v1/layers/${"1".repeat(64)}` }), late: 1 },
  "PUT /v1/layers/:key": {
    kind: "worker",
    request: (n) => ({ path: `/v1/layers/${"1".repeat(64)}`, body: { digest: n.bundle } }),
  },
  "POST /v1/deploy": {
    kind: "named",
    request: (n) => ({ path: "/v1/deploy", body: { manifest, bundleHash: n.bundle } }),
  },
  "GET /v1/apps/:app": { kind: "named", request: (n) => ({ path: `/v1/apps/${n.app}` }) },
  "GET /v1/apps/:app/schedules": { kind: "named", request: (n) => ({ path: `/v1/apps/${n.app}/schedules` }) },
  "GET /v1/apps/:app/history": { kind: "named", request: (n) => ({ path: `/v1/apps/${n.app}/history` }) },
  "POST /v1/apps/:app/rollback": {
    kind: "named",
    request: (n) => ({ path: `/v1/apps/${n.app}/rollback`, body: { version: 1 } }),
    late: 1,
  },
  "POST /v1/admin/rotate-key": { kind: "admin", request: () => ({ path: "/v1/admin/rotate-key" }) },
  "GET /v1/environments": { kind: "own", request: () => ({ path: "/v1/environments" }) },
  "POST /v1/environments": { kind: "own", request: (n) => ({ path: "/v1/environments", body: { name: `${n.env}2` } }) },
  "DELETE /v1/environments/:name": { kind: "named", request: (n) => ({ path: `/v1/environments/${n.env}` }), late: 1 },
  "GET /v1/secrets": { kind: "own", request: () => ({ path: "/v1/secrets" }) },
  "POST /v1/secrets": {
    kind: "own",
    request: (n) => ({ path: "/v1/secrets", body: { name: `${n.secret}-2`, values: { K: "v" } } }),
  },
  "DELETE /v1/secrets/:name": { kind: "named", request: (n) => ({ path: `/v1/secrets/${n.secret}` }), late: 2 },
  "GET /v1/whoami": { kind: "own", container: true, request: () => ({ path: "/v1/whoami" }) },
  "GET /v1/tokens": { kind: "own", request: () => ({ path: "/v1/tokens" }) },
  "POST /v1/tokens": { kind: "own", request: () => ({ path: "/v1/tokens", body: { name: "another" } }) },
  "DELETE /v1/tokens/:id": { kind: "named", request: (n) => ({ path: `/v1/tokens/${n.tokenId}` }), late: 1 },
  "GET /v1/workspaces": { kind: "admin", request: () => ({ path: "/v1/workspaces" }) },
  "POST /v1/workspaces": { kind: "admin", request: () => ({ path: "/v1/workspaces", body: { name: "c" } }) },
  "GET /v1/containers": { kind: "own", request: () => ({ path: "/v1/containers" }) },
  "POST /v1/functions/:id/autoscaler": {
    kind: "named",
    request: (n) => ({ path: `/v1/functions/${n.functionId}/autoscaler`, body: { maxContainers: 2 } }),
  },
  "POST /v1/apps": {
    kind: "named",
    request: (n) => ({ path: "/v1/apps", body: { manifest, mode: "detached", bundleHash: n.bundle } }),
  },
  "POST /v1/apps/:id/versions": {
    kind: "named",
    request: (n) => ({ path: `/v1/apps/${n.runId}/versions`, body: { manifest: run, bundleHash: n.bundle } }),
  },
  "GET /v1/apps": { kind: "own", request: () => ({ path: "/v1/apps" }) },
  "POST /v1/apps/:id/heartbeat": { kind: "named", request: (n) => ({ path: `/v1/apps/${n.appId}/heartbeat` }) },
  "POST /v1/apps/:app/stop": { kind: "named", request: (n) => ({ path: `/v1/apps/${n.app}/stop` }), late: 3 },
  "GET /v1/functions/lookup": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/functions/lookup?app=${n.app}&name=f` }),
  },
  "HEAD /v1/blobs/:hash": { kind: "named", container: true, request: (n) => ({ path: `/v1/blobs/${n.bundle}` }) },
  "GET /v1/blobs/:hash": { kind: "named", container: true, request: (n) => ({ path: `/v1/blobs/${n.bundle}` }) },
  "GET /v1/volumes": { kind: "own", container: true, request: () => ({ path: "/v1/volumes" }) },
  // A container makes no volume (a mounted one is made at deploy).
  "POST /v1/volumes": {
    kind: "own",
    request: (n) => ({ path: "/v1/volumes", body: { name: `${n.volume}-2`, ifMissing: true } }),
  },
  "GET /v1/volumes/:name": { kind: "named", container: true, request: (n) => ({ path: `/v1/volumes/${n.volume}` }) },
  // Forced: A's test containers mount it (and do not stop).
  "DELETE /v1/volumes/:name": {
    kind: "named",
    request: (n) => ({ path: `/v1/volumes/${n.volume}?force=true` }),
    late: 4,
  },
  "GET /v1/volumes/:name/history": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/history` }),
  },
  // A's volume has versions 1 (empty), 2 (f.txt) and 3 (g.txt): rolling back to 2 again changes nothing.
  "POST /v1/volumes/:name/rollback": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/rollback`, body: { version: 2 } }),
  },
  "GET /v1/volumes/:name/files": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/files?recursive=true` }),
  },
  "GET /v1/volumes/:name/stat": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/stat?path=f.txt` }),
  },
  "GET /v1/volumes/:name/file": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/file?path=f.txt` }),
  },
  "PUT /v1/volumes/:name/file": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/file?path=w.txt`, raw: archiveBytes }),
  },
  "DELETE /v1/volumes/:name/file": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/file?path=w.txt` }),
  },
  "POST /v1/volumes/:name/copy": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/copy`, body: { from: "f.txt", to: "copy.txt" } }),
  },
  "POST /v1/volumes/:name/commit": {
    kind: "named",
    container: true,
    request: (n) => ({ path: `/v1/volumes/${n.volume}/commit`, body: { changes: [{ path: "c.txt", deleted: true }] } }),
  },
  "PUT /v1/blobs/:hash": {
    kind: "own",
    container: true,
    request: (n) => ({ path: `/v1/blobs/${n.bundle}`, raw: bundleBytes }),
  },
};

describe("authorization: every route × (no token, revoked, another workspace's, a container's, the right one)", () => {
  let dir: string;
  let server: RunningServer;
  let store: Store;
  const token: Record<
    | "a"
    | "aAdmin"
    | "aRevoked"
    | "b"
    | "worker"
    | "container"
    | "readOnlyContainer"
    | "bareContainer"
    | "stagingContainer"
    | "stoppedContainer",
    string
  > = {
    a: "",
    aAdmin: "",
    aRevoked: "",
    b: "",
    worker: "",
    container: "",
    readOnlyContainer: "",
    bareContainer: "",
    stagingContainer: "",
    stoppedContainer: "",
  };
  let real: Names;
  const madeUp: Names = {
    app: "nosuchapp",
    appId: "ap-00000000-0000-0000-0000-000000000000",
    runId: "ap-00000000-0000-0000-0000-000000000001",
    functionId: "fu-00000000-0000-0000-0000-000000000000",
    env: "nosuchenv",
    secret: "nosuchsecret",
    tokenId: "tk-00000000000000000000",
    bundle: "e".repeat(64),
    archive: "f".repeat(64),
    volume: "nosuchvolume",
  };

  const call = async (route: string, names: Names, credential: string | undefined) => {
    const method = route.split(" ")[0]!;
    const { path, body, raw } = CASES[route]!.request(names);
    const response = await fetch(new URL(path, server.url), {
      method,
      headers: {
        ...(credential ? { authorization: `Bearer ${credential}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(raw ? { body: raw } : body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    // A build streams until a worker answers: its status is all that matters here.
    if (path === "/v1/images/build" && response.ok) {
      await response.body?.cancel();
      return { status: response.status, text: "" };
    }
    return { status: response.status, text: await response.text() };
  };

  /** A response with the names it mentions replaced by what they stand for, to compare two of them. */
  const normalized = (text: string, names: Names) =>
    Object.entries(names)
      // Longest first: a short name ("db") can occur inside a longer one (a token id's hex).
      .sort(([, a], [, b]) => b.length - a.length)
      .reduce((out, [key, value]) => out.replaceAll(value, `<${key}>`), text);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-auth-"));
    const keyFile = join(dir, "master.key");
    store = new Store(await openPglite(), { box: await SecretBox.load({ keyFile }) });
    const secrets = { store: store.secrets, keyFile };
    server = await startServer({
      store,
      blobs: new FsBlobStore(join(dir, "blobs")),
      log: pino({ level: "silent" }),
      secrets,
    });
    const a = await server.tokens.createWorkspace("a");
    const b = await server.tokens.createWorkspace("b");
    token.a = (await server.tokens.create({ kind: "user", name: "a", workspace: a.id })).credential;
    token.aAdmin = (await server.tokens.create({ kind: "user", name: "a", workspace: a.id, admin: true })).credential;
    const revoked = await server.tokens.create({ kind: "user", name: "gone", workspace: a.id });
    await server.tokens.revoke(revoked.token.id);
    token.aRevoked = revoked.credential;
    token.b = (await server.tokens.create({ kind: "user", name: "b", workspace: b.id })).credential;
    token.worker = (await server.tokens.create({ kind: "worker", name: "w" })).credential;
    const victim = await server.tokens.create({ kind: "user", name: "victim", workspace: a.id });

    // Workspace A's things: a deployed app with two versions, an environment, a secret, local files.
    const as = async (method: string, path: string, body?: unknown, raw?: Uint8Array) => {
      const response = await fetch(new URL(path, server.url), {
        method,
        headers: { authorization: `Bearer ${token.a}`, "content-type": "application/json" },
        ...(raw ? { body: raw } : body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      expect(response.status, `${method} ${path}: ${await response.clone().text()}`).toBe(200);
      return response.json() as Promise<Record<string, unknown>>;
    };
    await as("PUT", `/v1/blobs/${sha(bundleBytes)}`, undefined, bundleBytes);
    await as("PUT", `/v1/blobs/${sha(archiveBytes)}`, undefined, archiveBytes);
    await as("POST", "/v1/deploy", { manifest, bundleHash: sha(bundleBytes) });
    const deployed = await as("POST", "/v1/deploy", { manifest, bundleHash: sha(bundleBytes) });
    const detached = await as("POST", "/v1/apps", { manifest: run, mode: "detached", bundleHash: sha(bundleBytes) });
    await as("POST", "/v1/environments", { name: "staging-a" });
    await as("POST", "/v1/secrets", { name: "db", values: { PASSWORD: "hunter22" } });
    await as("POST", "/v1/volumes", { name: "data" });
    await as("PUT", "/v1/volumes/data/file?path=f.txt", undefined, archiveBytes);
    await as("PUT", "/v1/volumes/data/file?path=g.txt", undefined, bundleBytes);
    real = {
      app: "svc",
      appId: deployed.appId as string,
      runId: detached.appId as string,
      functionId: (deployed.functions as Record<string, string>).f!,
      env: "staging-a",
      secret: "db",
      tokenId: victim.token.id,
      bundle: sha(bundleBytes),
      archive: sha(archiveBytes),
      volume: "data",
    };
    // Containers of A's app: one in main, one in A's staging environment, one that has stopped.
    const { volume } = await as("GET", "/v1/volumes/data");
    const volumeId = (volume as { id: string }).id;
    const container = (env: string, volumes: { volumeId: string; readOnly: boolean }[] = []) =>
      store.fleet.addContainer({
        id: `ct-${randomUUID().slice(0, 13)}`,
        workerId: "wk-test",
        functionId: real.functionId,
        version: 2,
        workspace: a.id,
        appId: real.appId,
        env,
        volumes,
      });
    // The volume routes' container cases use the one that mounts A's volume.
    token.container = await container("main", [{ volumeId, readOnly: false }]);
    token.readOnlyContainer = await container("main", [{ volumeId, readOnly: true }]);
    token.bareContainer = await container("main");
    token.stagingContainer = await container("staging-a");
    token.stoppedContainer = await container("main");
    await store.fleet.setContainerState(token.stoppedContainer.split(":")[0]!, "stopped", "done");
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("has a case for every route, and only /v1/health is open", async () => {
    const routes = server.routes.filter((route) => route !== "GET /v1/health");
    expect(routes.filter((route) => !CASES[route])).toEqual([]);
    expect(Object.keys(CASES).filter((route) => !routes.includes(route))).toEqual([]);
    expect((await fetch(new URL("/v1/health", server.url))).status).toBe(200);
  });

  it("refuses every route without a token, and with a revoked one", async () => {
    for (const route of Object.keys(CASES)) {
      for (const credential of [
        undefined,
        token.aRevoked,
        "tk-nope:sk-nope",
        `${real.tokenId}:sk-wrong`,
        token.stoppedContainer,
        `${token.container.split(":")[0]}:sk-wrong`,
      ]) {
        const { status } = await call(route, real, credential);
        expect(status, `${route} with ${credential ?? "no token"}`).toBe(401);
      }
    }
  });

  it("answers another workspace as if A's names did not exist, and never shows it A's things", async () => {
    for (const [route, { kind }] of Object.entries(CASES)) {
      const theirs = await call(route, real, token.b);
      if (kind === "admin" || kind === "worker") {
        expect(theirs.status, route).toBe(403);
        continue;
      }
      const nothing = await call(route, madeUp, token.b);
      if (kind === "named") {
        expect(theirs.status, `${route}: ${theirs.text}`).toBeGreaterThanOrEqual(400);
        expect(theirs.status, route).toBe(nothing.status);
        expect(normalized(theirs.text, real), route).toBe(normalized(nothing.text, madeUp));
      } else {
        expect(theirs.status, `${route}: ${theirs.text}`).toBeLessThan(300);
        for (const name of [real.appId, real.env, real.tokenId, "staging-a", "hunter22"]) {
          expect(theirs.text, route).not.toContain(name);
        }
      }
    }
  });

  it("keeps worker tokens to worker routes, and user tokens off them", async () => {
    for (const [route, { kind }] of Object.entries(CASES)) {
      // Workers read and write blobs too, and may ask who they are.
      if (route.includes("/v1/blobs/") || route === "GET /v1/whoami") continue;
      const { status } = await call(route, real, kind === "worker" ? token.a : token.worker);
      expect(status, route).toBe(403);
    }
  });

  it("keeps a container's token to calls of its own environment", async () => {
    for (const [route, { container }] of Object.entries(CASES)) {
      const { status, text } = await call(route, real, token.container);
      if (container) expect(status, `${route}: ${text}`).toBeLessThan(300);
      else expect(status, `${route}: ${text}`).toBe(403);
    }
    const lookup = (env: string, credential: string) =>
      call("GET /v1/functions/lookup", { ...real, app: `${real.app}&env=${env}` }, credential);
    expect((await lookup("staging-a", token.container)).status).toBe(403);
    expect((await lookup("main", token.stagingContainer)).status).toBe(403);
    // Its own environment is the default: A's app is deployed to main, not staging.
    expect((await call("GET /v1/functions/lookup", real, token.stagingContainer)).status).toBe(404);
    // Volumes too: those of its own environment only.
    const volume = (credential: string, env = "") =>
      call("GET /v1/volumes/:name", { ...real, volume: `${real.volume}${env}` }, credential);
    expect((await volume(token.stagingContainer)).status).toBe(404);
    expect((await volume(token.stagingContainer, "?env=main")).status).toBe(403);
    expect((await volume(token.container, "?env=staging-a")).status).toBe(403);
    // A container reaches only the volumes its function mounts, and changes only those mounted read-write.
    const bare = await volume(token.bareContainer);
    expect(bare.status).toBe(403);
    expect(bare.text).toMatch(/reaches only the volumes its function mounts/);
    expect((await volume(token.readOnlyContainer)).status).toBe(200);
    const write = await call("PUT /v1/volumes/:name/file", real, token.readOnlyContainer);
    expect(write.status).toBe(403);
    expect(write.text).toMatch(/mounted read-only in this container/);
    const listed = JSON.parse((await call("GET /v1/volumes", real, token.bareContainer)).text) as { volumes: [] };
    expect(listed.volumes).toEqual([]);
    const whoami = JSON.parse((await call("GET /v1/whoami", real, token.container)).text) as Record<string, unknown>;
    expect(whoami).toMatchObject({ kind: "container", admin: false, workspace: { name: "a" } });
  });

  it("authenticates WebSockets, and keeps another workspace's calls and logs from it", async () => {
    const open = (path: string, credential: string | undefined) =>
      new Promise<WebSocket | number>((resolve) => {
        const url = new URL(`${path}?v=${PROTOCOL_VERSION}`, server.url);
        url.protocol = "ws:";
        const socket = new WebSocket(url, {
          headers: credential ? { authorization: `Bearer ${credential}` } : {},
        });
        socket.once("open", () => resolve(socket));
        socket.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      });
    expect(await open("/v1/client", undefined)).toBe(401);
    expect(await open("/v1/client", token.aRevoked)).toBe(401);
    expect(await open("/v1/client", token.worker)).toBe(403);
    expect(await open("/v1/worker", token.a)).toBe(403);
    expect(await open("/v1/worker", undefined)).toBe(401);

    const a = (await open("/v1/client", token.a)) as WebSocket;
    const b = (await open("/v1/client", token.b)) as WebSocket;
    const ask = (socket: WebSocket, message: Record<string, unknown>) =>
      new Promise<{ code?: string; message?: string } | undefined>((resolve) => {
        const rid = 1 + Math.floor(Math.random() * 1e9);
        const onMessage = (data: Buffer) => {
          const reply = decodeMessage(data) as { t: string; rid: number; error?: { code: string; message: string } };
          if (reply.t !== "ack" || reply.rid !== rid) return;
          socket.off("message", onMessage);
          resolve(reply.error);
        };
        socket.on("message", onMessage);
        socket.send(encodeMessage({ ...message, rid }));
      });
    const submit = (socket: WebSocket, functionId: string, callId = randomUUID()) =>
      ask(socket, {
        t: "submit",
        functionId,
        callId,
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args: { inline: encodeMessage([]) } }],
      });
    /** B's answer about A's thing, and about one that exists nowhere: the same but for the name. */
    const same = async (
      ask: (name: string) => Promise<{ code?: string; message?: string } | undefined>,
      name: string,
    ) => {
      const theirs = await ask(name);
      const nothing = await ask(NONE);
      expect(theirs?.code, name).toBe("NOT_FOUND");
      expect(theirs?.message?.replaceAll(name, "<name>")).toBe(nothing?.message?.replaceAll(NONE, "<name>"));
    };
    const NONE = randomUUID();
    const callOfA = randomUUID();
    expect(await submit(a, real.functionId, callOfA)).toBeUndefined();
    await same((id) => submit(b, id), real.functionId);
    await same((id) => ask(b, { t: "logs", appId: id }), real.appId);
    await same((id) => ask(b, { t: "cancel", callId: id }), callOfA);
    await same((id) => ask(b, { t: "subscribe", callId: id, fromIdx: 0 }), callOfA);
    expect(await ask(a, { t: "cancel", callId: callOfA })).toBeUndefined();
    // Only the connection that opened a shell types into it or resizes it.
    expect((await ask(b, { t: "shell-input", sid: NONE, eof: true }))?.code).toBe("NOT_FOUND");
    expect((await ask(b, { t: "shell-resize", sid: NONE, rows: 9, cols: 9 }))?.code).toBe("NOT_FOUND");

    // A container calls functions of its workspace and environment, and nothing else over the socket.
    expect(await open("/v1/worker", token.container)).toBe(403);
    expect(await open("/v1/client", token.stoppedContainer)).toBe(401);
    const inMain = (await open("/v1/client", token.container)) as WebSocket;
    const inStaging = (await open("/v1/client", token.stagingContainer)) as WebSocket;
    const callOfContainer = randomUUID();
    expect(await submit(inMain, real.functionId, callOfContainer)).toBeUndefined();
    expect(await ask(inMain, { t: "subscribe", callId: callOfContainer, fromIdx: 0 })).toBeUndefined();
    expect(await ask(inMain, { t: "cancel", callId: callOfContainer })).toBeUndefined();
    expect((await ask(inMain, { t: "logs", appId: real.appId }))?.code).toBe("FORBIDDEN");
    await same((id) => submit(inStaging, id), real.functionId);
    await same((id) => ask(inStaging, { t: "subscribe", callId: id, fromIdx: 0 }), callOfA);
    for (const socket of [a, b, inMain, inStaging]) socket.close();
  });

  it("closes a revoked token's open connections", async () => {
    const { token: t, credential } = await server.tokens.create({ kind: "user", name: "short", workspace: "ws-local" });
    const url = new URL(`/v1/client?v=${PROTOCOL_VERSION}`, server.url);
    url.protocol = "ws:";
    const socket = new WebSocket(url, { headers: { authorization: `Bearer ${credential}` } });
    await new Promise((resolve) => socket.once("open", resolve));
    const closed = new Promise<number>((resolve) => socket.once("close", resolve));
    const response = await fetch(new URL(`/v1/tokens/${t.id}`, server.url), {
      method: "DELETE",
      headers: { authorization: `Bearer ${credential}` },
    });
    expect(response.status).toBe(200);
    expect(await closed).toBe(4401);
  });
  it("lets the right token through", async () => {
    const order = Object.entries(CASES).sort(([, x], [, y]) => (x.late ?? 0) - (y.late ?? 0));
    for (const [route, { kind }] of order) {
      const credential = kind === "admin" ? token.aAdmin : kind === "worker" ? token.worker : token.a;
      const { status, text } = await call(route, real, credential);
      expect(status, `${route}: ${text}`).toBeLessThan(300);
    }
  });
});
