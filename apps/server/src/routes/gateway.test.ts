import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { connect as netConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import {
  type FunctionSpec,
  type LogLine,
  REQUEST_ID_HEADER,
  type ServerToWorker,
  WEB_RELAY_SECRET_HEADER,
  type WebSpec,
} from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import type { Subscriber } from "../engine/hub.js";
import type { WebSystem } from "../engine/systems/web.js";
import { testSpec } from "../engine/test-spec.js";
import type { WorkerConn } from "../engine/workers.js";
import { type RunningServer, startServer } from "../server.js";

const SECRET = "relay-secret-0123456789";

/** A worker's web relay, played by the test: it answers for containers by path. */
class FakeRelay {
  server: Server = createServer((req, res) => this.handle(req, res));
  url = "";
  /** Requests that reached a container, by container id. */
  readonly seen: { container: string; path: string; headers: IncomingMessage["headers"] }[] = [];
  /** Containers the relay no longer has: it answers 503, as the real one does. */
  readonly gone = new Set<string>();
  inFlight = new Map<string, number>();
  maxInFlight = 0;
  /** Lets `/stream` write its second chunk. */
  next: () => void = () => {};

  /** Told the code of each WebSocket close the container sees. */
  onClose: (code: number) => void = () => {};
  /** WebSockets the relay has open to containers, by container id. */
  readonly sockets = new Map<string, number>();
  private readonly wss = new WebSocketServer({ noServer: true });

  constructor() {
    this.server.on("upgrade", (req: IncomingMessage, socket: Socket, head: Buffer) => this.upgrade(req, socket, head));
  }

  /**
   * `/ws` echoes each message back (text as text, binary as binary); a text message `close CODE REASON`
   * has it close with that code; `/refuse` declines with a chunked 426; `/die` drops the connection.
   */
  private upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (req.headers[WEB_RELAY_SECRET_HEADER] !== SECRET) return void socket.end("HTTP/1.1 401 Unauthorized\r\n\r\n");
    const match = /^\/containers\/([^/]+)(\/[^?]*)(\?.*)?$/.exec(req.url ?? "");
    const container = match?.[1] ?? "";
    const path = match?.[2] ?? "";
    this.seen.push({ container, path, headers: req.headers });
    if (path === "/die") return void socket.destroy();
    if (path === "/refuse") {
      return void socket.end(
        "HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nno ws\r\n0\r\n\r\n",
      );
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.set(container, (this.sockets.get(container) ?? 0) + 1);
      ws.on("close", (code) => {
        this.sockets.set(container, (this.sockets.get(container) ?? 1) - 1);
        this.onClose(code);
      });
      ws.on("message", (data, isBinary) => {
        const text = isBinary ? "" : data.toString();
        if (text.startsWith("close ")) {
          const [, code, ...reason] = text.split(" ");
          return void ws.close(Number(code), reason.join(" "));
        }
        if (text === "who")
          return void ws.send(JSON.stringify({ container, path, id: req.headers[REQUEST_ID_HEADER] }));
        if (text === "drop") return void socket.destroy();
        ws.send(data, { binary: isBinary });
      });
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers[WEB_RELAY_SECRET_HEADER] !== SECRET) return void res.writeHead(401).end();
    const match = /^\/containers\/([^/]+)(\/[^?]*)(\?.*)?$/.exec(req.url ?? "");
    const container = match?.[1] ?? "";
    const path = match?.[2] ?? "";
    if (this.gone.has(container)) {
      res.writeHead(503, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ error: { code: "UNAVAILABLE", message: "gone" } }));
    }
    this.seen.push({ container, path, headers: req.headers });
    const load = (this.inFlight.get(container) ?? 0) + 1;
    this.inFlight.set(container, load);
    this.maxInFlight = Math.max(this.maxInFlight, load);
    res.once("close", () => this.inFlight.set(container, (this.inFlight.get(container) ?? 1) - 1));
    if (path === "/slow") await new Promise((resolve) => setTimeout(resolve, 100));
    if (path === "/die") return void req.socket.destroy();
    if (path === "/die-mid") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 20);
      return;
    }
    if (path === "/stream") {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      await new Promise<void>((resolve) => {
        this.next = resolve;
      });
      return void res.end("data: two\n\n");
    }
    if (path === "/late") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.flushHeaders();
      await new Promise<void>((resolve) => {
        this.next = resolve;
      });
      return void res.end("late");
    }
    if (path === "/held") {
      let body = "";
      for await (const chunk of req) body += chunk;
      await new Promise<void>((resolve) => {
        this.next = resolve;
      });
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ done: true, body, method: req.method }));
    }
    if (path === "/upload") {
      const hash = createHash("sha256");
      let bytes = 0;
      for await (const chunk of req) {
        hash.update(chunk as Buffer);
        bytes += (chunk as Buffer).length;
      }
      return void res.end(JSON.stringify({ bytes, sha256: hash.digest("hex") }));
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ container, path, query: match?.[3] ?? "", method: req.method }));
  }
}

/** Polls `check` every 10 ms until it holds (at most 5 s). */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(check()).toBe(true);
}

const web = (label: string, more: Partial<WebSpec> = {}): FunctionSpec =>
  testSpec({
    name: label.replaceAll("-", "_"),
    maxInputs: 2,
    web: { kind: "fetch", label, docs: false, requiresProxyAuth: false, ...more },
  });

describe("web gateway", () => {
  let dir: string;
  let store: Store;
  let server: RunningServer;
  let relay: FakeRelay;
  let userToken: string;
  const sent: ServerToWorker[] = [];
  /** Whether the fake worker reports a container started as soon as it is asked for one. */
  let autoStart = true;
  const worker: WorkerConn = {
    id: "wk-web",
    name: "web",
    capacity: { cpu: 64, memoryMiB: 65_536 },
    containers: new Map(),
    send: (message) => {
      sent.push(message);
      if (message.t === "start" && autoStart) void started(message.containerId);
    },
  };
  const started = (containerId: string) => server.control.workerMessage(worker, { t: "started", containerId });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-gateway-"));
    store = new Store(await openPglite());
    server = await startServer({
      store,
      blobs: new FsBlobStore(join(dir, "blobs")),
      log: pino({ level: process.env.GW_LOG ?? "silent" }),
      webBaseUrl: "http://apps.test",
    });
    relay = new FakeRelay();
    await relay.listen();
    worker.webRelay = { url: relay.url, secret: SECRET };
    await server.control.workerConnected(worker, "process", [], []);
    userToken = (await server.tokens.create({ kind: "user", name: "t", workspace: LOCAL_WORKSPACE })).credential;
  });

  afterEach(() => {
    autoStart = true;
  });

  let serverClosed = false;
  afterAll(async () => {
    if (!serverClosed) await server?.close();
    await new Promise((resolve) => relay?.server.close(resolve));
    await rm(dir, { recursive: true, force: true });
  });

  let deploys = 0;
  async function deploy(app: string, specs: FunctionSpec[], workspace = LOCAL_WORKSPACE) {
    const deployed = await store.apps.deploy({
      workspace,
      name: app,
      env: "main",
      bundleHash: `b${deploys++}`,
      functions: specs,
    });
    await server.control.deployed(deployed.app, deployed.functions);
    return deployed;
  }
  /** The engine's web system whole: the gateway sees only part of it, the tests count its slots. */
  const slots = () => server.control.web as unknown as WebSystem;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, server.url), { headers });

  /** A WebSocket to the gateway: open, or the HTTP answer it got instead. */
  const connect = (path: string, headers: Record<string, string> = {}) =>
    new Promise<
      | { ws: WebSocket; requestId: string | undefined }
      | { status: number; body: string; headers: IncomingMessage["headers"] }
    >((resolve, reject) => {
      const ws = new WebSocket(new URL(path, server.url.replace("http", "ws")), { headers });
      ws.once("upgrade", (res) => {
        const id = res.headers[REQUEST_ID_HEADER];
        ws.once("open", () => resolve({ ws, requestId: typeof id === "string" ? id : undefined }));
      });
      ws.once("unexpected-response", async (_req, res) => {
        let body = "";
        for await (const part of res) body += part;
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
      ws.once("error", reject);
    });
  const opened = async (path: string, headers: Record<string, string> = {}) => {
    const result = await connect(path, headers);
    if (!("ws" in result)) throw new Error(`no upgrade: ${result.status} ${result.body}`);
    return result;
  };
  const refused = async (path: string, headers: Record<string, string> = {}) => {
    const result = await connect(path, headers);
    if ("ws" in result) {
      result.ws.terminate();
      throw new Error("upgraded, but should have been refused");
    }
    return result;
  };
  const nextMessage = (ws: WebSocket) =>
    new Promise<{ data: Buffer; isBinary: boolean }>((resolve) =>
      ws.once("message", (data, isBinary) => resolve({ data: data as Buffer, isBinary })),
    );
  const closed = (ws: WebSocket) =>
    new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );

  it("routes /w/ENV/APP/LABEL/REST to a container, with the query, the request id and x-forwarded-*", async () => {
    await deploy("hello", [web("greet")]);
    const response = await get("/w/main/hello/greet/docs/page?x=1");
    expect(response.status).toBe(200);
    const body = (await response.json()) as { path: string; query: string; container: string };
    expect(body).toMatchObject({ path: "/docs/page", query: "?x=1" });
    const seen = relay.seen.at(-1)!;
    expect(seen.headers[REQUEST_ID_HEADER]).toBe(response.headers.get(REQUEST_ID_HEADER));
    expect(seen.headers["x-forwarded-prefix"]).toBe("/w/main/hello/greet");
    expect((await get("/w/main/hello/greet")).status).toBe(200);
    expect(relay.seen.at(-1)!.path).toBe("/");
  });

  it("routes LABEL-APP.ENV.DOMAIN by host name, any path, under the server's web base URL", async () => {
    await deploy("my-site", [web("front-page")]);
    const c = await server.tokens.createWorkspace("c");
    await deploy("shop", [web("cart")], c.id);
    const byHost = (host: string, path: string) =>
      new Promise<{ status: number; body: string; headers: IncomingMessage["headers"] }>((resolve, reject) => {
        const sent = request(new URL(path, server.url), { headers: { host } }, async (res) => {
          let body = "";
          for await (const part of res) body += part;
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        });
        sent.on("error", reject);
        sent.end();
      });
    const answer = await byHost("Front-Page-My-Site.main.apps.test:7420", "/items/7?q=1");
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ path: "/items/7", query: "?q=1" });
    expect(relay.seen.at(-1)!.headers["x-forwarded-prefix"]).toBeUndefined();
    expect(relay.seen.at(-1)!.headers["x-forwarded-host"]).toBe("Front-Page-My-Site.main.apps.test:7420");
    // A host owns every path, the API's included; another workspace's app needs its name in the host.
    expect((await byHost("front-page-my-site.main.apps.test", "/v1/apps")).status).toBe(200);
    expect((await byHost("cart-shop.main.c.apps.test", "/")).status).toBe(200);
    for (const host of ["cart-shop.main.apps.test", "front-page-my.main.apps.test", "nope-x.main.apps.test"]) {
      const missing = await byHost(host, "/");
      expect(missing.status, host).toBe(404);
      expect(JSON.parse(missing.body).error.message).toBe("no web endpoint at this URL");
    }
    // The base domain itself, and hosts outside it, are the API's.
    const api = await byHost("apps.test", "/v1/whoami");
    expect(api.status).toBe(401);
    const me = await fetch(new URL("/v1/whoami", server.url), { headers: { authorization: `Bearer ${userToken}` } });
    expect(((await me.json()) as { webBaseUrl: string }).webBaseUrl).toBe("http://apps.test");
  });

  it("takes a WebSocket to a container: text and binary both ways, close codes either way, the request id", async () => {
    await deploy("sockets", [web("chat")]);
    const { ws, requestId } = await opened("/w/main/sockets/chat/ws?room=1");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const seen = relay.seen.at(-1)!;
    expect(seen.path).toBe("/ws");
    expect(seen.headers[REQUEST_ID_HEADER]).toBe(requestId);
    expect(seen.headers["x-forwarded-prefix"]).toBe("/w/main/sockets/chat");
    expect(seen.headers[WEB_RELAY_SECRET_HEADER]).toBe(SECRET);

    ws.send("hello");
    expect(await nextMessage(ws)).toEqual({ data: Buffer.from("hello"), isBinary: false });
    const big = randomBytes(1024 * 1024);
    ws.send(big);
    const echoed = await nextMessage(ws);
    expect(echoed.isBinary).toBe(true);
    expect(echoed.data.equals(big)).toBe(true);

    // The container closes with its code and reason; the client gets them as they were.
    ws.send("close 4002 done here");
    expect(await closed(ws)).toEqual({ code: 4002, reason: "done here" });

    // The client closes with its code: the container sees it, through the gateway and the relay.
    const second = (await opened("/w/main/sockets/chat/ws")).ws;
    const container = relay.seen.at(-1)!.container;
    const seenClose = new Promise<number>((resolve) => {
      relay.onClose = resolve;
    });
    second.close(4001, "bye");
    expect(await seenClose).toBe(4001);
    expect((await closed(second)).code).toBe(4001);
    await until(() => (relay.sockets.get(container) ?? 0) === 0 && slots().inFlightOf(container) === 0);
  });

  it("holds a container's slot while a WebSocket is open, and frees it when either side closes", async () => {
    await deploy("one-at-a-time", [{ ...web("solo"), maxInputs: 1, maxContainers: 1 }]);
    const first = (await opened("/w/main/one-at-a-time/solo/ws")).ws;
    const container = relay.seen.at(-1)!.container;
    expect(slots().inFlightOf(container)).toBe(1);
    // With the one slot taken, a second socket and a request wait for it.
    let secondOpen = false;
    const second = opened("/w/main/one-at-a-time/solo/ws").then((result) => {
      secondOpen = true;
      return result.ws;
    });
    const request = get("/w/main/one-at-a-time/solo/");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(secondOpen).toBe(false);
    first.close(1000);
    const next = await second;
    expect(slots().inFlightOf(container)).toBe(1);
    // The container ends this one: the slot is free again, for the request that waited.
    next.send("close 1000 done");
    await closed(next);
    expect((await request).status).toBe(200);
    await until(() => slots().inFlightOf(container) === 0);
    // A client that drops its connection without a close frame frees it too.
    const third = (await opened("/w/main/one-at-a-time/solo/ws")).ws;
    third.terminate();
    await until(() => slots().inFlightOf(container) === 0);
    // So does a container (or its relay) that drops it: the client sees the connection end (1006).
    const fourth = (await opened("/w/main/one-at-a-time/solo/ws")).ws;
    fourth.send("drop");
    expect((await closed(fourth)).code).toBe(1006);
    await until(() => slots().inFlightOf(container) === 0);
    expect((await opened("/w/main/one-at-a-time/solo/ws")).ws.terminate()).toBeUndefined();
    await until(() => slots().inFlightOf(container) === 0);
  });

  it("passes a container's refusal of an upgrade back as it is, and answers 502 when the container drops it", async () => {
    await deploy("decline", [web("nows")]);
    const declined = await refused("/w/main/decline/nows/refuse");
    expect(declined.status).toBe(426);
    expect(declined.body).toBe("no ws");
    expect(declined.headers[REQUEST_ID_HEADER]).toMatch(/\S/);
    const dropped = await refused("/w/main/decline/nows/die");
    expect(dropped.status).toBe(502);
    const { error } = JSON.parse(dropped.body) as { error: { code: string; requestId: string } };
    expect(error).toMatchObject({ code: "CONTAINER_CRASHED", requestId: dropped.headers[REQUEST_ID_HEADER] });
    const container = relay.seen.at(-1)!.container;
    await until(() => slots().inFlightOf(container) === 0);
    // A client that keeps its side open after a refusal holds nothing: the gateway closes the connection.
    const raw = netConnect({ port: Number(new URL(server.url).port), host: "127.0.0.1", allowHalfOpen: true });
    let got = "";
    raw.on("data", (chunk: Buffer) => {
      got += chunk.toString();
    });
    const ended = new Promise((resolve) => raw.once("end", resolve));
    raw.write(
      "GET /w/main/decline/nows/refuse HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n" +
        "sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    await ended;
    expect(got).toMatch(/^HTTP\/1\.1 426/);
    await until(() => slots().inFlightOf(relay.seen.at(-1)!.container) === 0);
    raw.destroy();
  });

  it("refuses an upgrade to an unknown URL (404), without proxy auth (401, before any container and whatever the kind) and to an endpoint (400)", async () => {
    const unknown = await refused("/w/main/nope/chat/ws");
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toMatchObject({
      error: { code: "NOT_FOUND", message: "no web endpoint at this URL" },
    });

    await deploy("guarded-ws", [web("inner", { requiresProxyAuth: true })]);
    const before = relay.seen.length;
    const denied = await refused("/w/main/guarded-ws/inner/ws");
    expect(denied.status).toBe(401);
    expect(denied.body).toContain("skiff token create --proxy");
    expect(relay.seen.length).toBe(before);
    const proxy = await server.tokens.create({ kind: "proxy", name: "ws", workspace: LOCAL_WORKSPACE });
    const { ws } = await opened("/w/main/guarded-ws/inner/ws", {
      "skiff-key": proxy.token.id,
      "skiff-secret": proxy.secret,
    });
    expect(relay.seen.at(-1)!.headers["skiff-secret"]).toBeUndefined();
    ws.close();

    await deploy("typed", [web("api", { kind: "endpoint" })]);
    const endpoint = await refused("/w/main/typed/api/");
    expect(endpoint.status).toBe(400);
    expect(endpoint.body).toContain("upgradeWebSocket");
    // An endpoint that requires proxy auth says 401 to a handshake without the token, not what kind it is.
    await deploy("typed-guarded", [web("api2", { kind: "endpoint", requiresProxyAuth: true })]);
    expect((await refused("/w/main/typed-guarded/api2/")).status).toBe(401);
    // The API's own sockets still answer as before.
    const api = await new Promise<number>((resolve) => {
      const ws = new WebSocket(new URL("/v1/nope", server.url.replace("http", "ws")));
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("error", () => resolve(-1));
    });
    expect(api).toBe(404);
  });

  it("gives up the wait for a container when the client leaves, and logs each WebSocket's line", async () => {
    autoStart = false;
    const { functions } = await deploy("waits", [{ ...web("later"), maxInputs: 1, startupTimeoutMs: 10_000 }]);
    const poolId = functions[0]!.id;
    const waiting = new WebSocket(new URL("/w/main/waits/later/ws", server.url.replace("http", "ws")));
    waiting.on("error", () => {});
    await until(() => slots().load(poolId).pending === 1);
    waiting.terminate();
    await until(() => slots().load(poolId).pending === 0);

    autoStart = true;
    const { app } = await deploy("talks", [web("logged-ws")]);
    const lines: LogLine[] = [];
    const watcher: Subscriber = { pushResults: () => {}, pushLogs: (more) => lines.push(...more), endLogs: () => {} };
    await server.control.subscribeLogs(LOCAL_WORKSPACE, app.id, watcher);
    const { ws } = await opened("/w/main/talks/logged-ws/chat?x=1");
    await new Promise((resolve) => setTimeout(resolve, 50));
    ws.close(1000);
    await until(() => lines.some((l) => l.line.startsWith("GET /chat?x=1 101")));
    expect(lines.map((l) => l.line).find((l) => l.startsWith("GET /chat?x=1 101"))).toMatch(/ \d+ms$/);
    server.control.removeSubscriber(watcher);
  });

  it("answers 404 alike for unknown environments, apps, labels and other workspaces' apps", async () => {
    const b = await server.tokens.createWorkspace("b");
    await deploy("theirs", [web("secret")], b.id);
    expect((await get("/w/main.b/theirs/secret/")).status).toBe(200);
    const bodies = new Set<string>();
    for (const path of [
      "/w/main/theirs/secret/",
      "/w/staging/hello/greet/",
      "/w/main/nope/greet",
      "/w/main/hello/nope",
      "/w/x",
    ]) {
      const response = await get(path);
      expect(response.status, path).toBe(404);
      const { error } = (await response.json()) as { error: { code: string; message: string } };
      bodies.add(JSON.stringify({ code: error.code, message: error.message }));
    }
    expect([...bodies]).toEqual([JSON.stringify({ code: "NOT_FOUND", message: "no web endpoint at this URL" })]);
  });

  it("refuses a label another running app of the environment uses, and one label twice in an app", async () => {
    const bundle = randomBytes(16);
    const hash = createHash("sha256").update(bundle).digest("hex");
    const api = (method: string, path: string, body?: unknown) =>
      fetch(new URL(path, server.url), {
        method,
        headers: { authorization: `Bearer ${userToken}`, "content-type": "application/json" },
        body: body instanceof Uint8Array ? body : JSON.stringify(body),
      });
    expect((await api("PUT", `/v1/blobs/${hash}`, bundle)).status).toBe(200);
    const manifest = (name: string, specs: FunctionSpec[]) => ({
      manifest: { name, functions: specs },
      bundleHash: hash,
    });
    expect((await api("POST", "/v1/deploy", manifest("one", [web("shared")]))).status).toBe(200);
    expect((await api("POST", "/v1/deploy", manifest("one", [web("shared")]))).status).toBe(200);
    const clash = await api("POST", "/v1/deploy", manifest("two", [web("shared")]));
    expect(clash.status).toBe(409);
    const { error } = (await clash.json()) as { error: { message: string } };
    expect(error.message).toMatch(/in use .*"shared" \(\w+\) by one\.shared.*skiff app stop/);
    const run = await api("POST", "/v1/apps", { ...manifest("three", [web("shared")]), mode: "ephemeral" });
    expect(run.status).toBe(409);
    // A label a running `skiff serve` (an ephemeral app) holds: the refusal says how to free it.
    const served = await api("POST", "/v1/apps", { ...manifest("five", [web("served")]), mode: "ephemeral" });
    expect(served.status).toBe(200);
    const behindServe = await api("POST", "/v1/deploy", manifest("six", [web("served")]));
    expect(behindServe.status).toBe(409);
    expect(((await behindServe.json()) as { error: { message: string } }).error.message).toContain(
      "a `skiff serve` or `skiff run` holds them while it runs",
    );
    // Two apps deployed at once with one new label: one gets it, the other is refused.
    const racing = await Promise.all(
      ["race-a", "race-b", "race-c"].map((name) => api("POST", "/v1/deploy", manifest(name, [web("contested")]))),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([200, 409, 409]);
    const twice = await api("POST", "/v1/deploy", manifest("four", [web("dup"), { ...web("dup"), name: "other" }]));
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: { message: string } }).error.message).toContain(
      'both have the label "dup"',
    );
  });

  it("lets only a proxy token of the workspace through to an endpoint that requires proxy auth", async () => {
    await deploy("private", [web("inside", { requiresProxyAuth: true })]);
    const before = relay.seen.length;
    const proxy = await server.tokens.create({ kind: "proxy", name: "p", workspace: LOCAL_WORKSPACE });
    const b =
      (await server.tokens.listWorkspaces()).find((w) => w.name === "b") ?? (await server.tokens.createWorkspace("b"));
    const theirs = await server.tokens.create({ kind: "proxy", name: "p", workspace: b.id });
    const user = await server.tokens.create({ kind: "user", name: "u", workspace: LOCAL_WORKSPACE });
    const as = (t: { token: { id: string }; secret: string }) => ({
      "skiff-key": t.token.id,
      "skiff-secret": t.secret,
    });
    const revoked = await server.tokens.create({ kind: "proxy", name: "old", workspace: LOCAL_WORKSPACE });
    await server.tokens.revoke(revoked.token.id);
    const admin = await server.tokens.create({ kind: "user", name: "a", workspace: LOCAL_WORKSPACE, admin: true });
    const workerToken = await server.tokens.create({ kind: "worker", name: "w" });
    const split = (credential: string) => {
      const [key, secret] = credential.split(":") as [string, string];
      return { "skiff-key": key, "skiff-secret": secret };
    };
    const refused: [string, Record<string, string>][] = [
      ["no token", {}],
      ["another workspace's proxy token", as(theirs)],
      ["a user token", as(user)],
      ["an admin token", as(admin)],
      ["a worker token", split(workerToken.credential)],
      ["a revoked proxy token", as(revoked)],
      ["a wrong secret", { "skiff-key": proxy.token.id, "skiff-secret": "sk-wrong" }],
      ["only the key", { "skiff-key": proxy.token.id }],
      ["a bearer token instead", { authorization: `Bearer ${proxy.credential}` }],
    ];
    for (const [what, headers] of refused) {
      const response = await get("/w/main/private/inside/", headers);
      expect(response.status, what).toBe(401);
      expect(await response.text()).toContain("skiff token create --proxy");
    }
    expect(relay.seen.length).toBe(before);
    const ok = await get("/w/main/private/inside/", as(proxy));
    expect(ok.status).toBe(200);
    expect(relay.seen.at(-1)!.headers["skiff-secret"]).toBeUndefined();
    // A proxy token opens web endpoints only, never the API.
    const apiCall = await fetch(new URL("/v1/apps", server.url), {
      headers: { authorization: `Bearer ${proxy.credential}` },
    });
    expect(apiCall.status).toBe(403);
  });

  it("keeps each container under maxInputs requests at once, spreading them", async () => {
    await deploy("busy", [{ ...web("work"), maxInputs: 2, maxContainers: 2 }]);
    relay.maxInFlight = 0;
    const responses = await Promise.all(Array.from({ length: 8 }, () => get("/w/main/busy/work/slow")));
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(relay.maxInFlight).toBeLessThanOrEqual(2);
    const containers = new Set(relay.seen.filter((s) => s.path === "/slow").map((s) => s.container));
    expect(containers.size).toBe(2);
  });

  it("scales from zero: a request waits, the autoscaler asks for a container, `started` serves it", async () => {
    autoStart = false;
    await deploy("cold", [web("start")]);
    sent.length = 0;
    const pending = get("/w/main/cold/start/");
    let start: Extract<ServerToWorker, { t: "start" }> | undefined;
    for (let i = 0; i < 100 && !start; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      start = sent.find((m): m is Extract<ServerToWorker, { t: "start" }> => m.t === "start");
    }
    expect(start?.spec.web?.label).toBe("start");
    await started(start!.containerId);
    const response = await pending;
    expect(response.status).toBe(200);
    expect(((await response.json()) as { container: string }).container).toBe(start!.containerId);
  });

  it("answers 503 with Retry-After when no container is ready within the startup timeout, and at once when the queue is full", async () => {
    autoStart = false;
    await deploy("never", [{ ...web("late"), maxInputs: 1, startupTimeoutMs: 300 }]);
    const late = await get("/w/main/never/late/");
    expect(late.status).toBe(503);
    expect(late.headers.get("retry-after")).toBeTruthy();
    expect(await late.text()).toContain("startupTimeout");

    await deploy("full", [{ ...web("queue"), maxInputs: 1, startupTimeoutMs: 10_000 }]);
    const controller = new AbortController();
    const waiting = Array.from({ length: 100 }, () =>
      fetch(new URL("/w/main/full/queue/", server.url), { signal: controller.signal }).catch(() => undefined),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const refused = await get("/w/main/full/queue/");
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("1");
    controller.abort();
    await Promise.all(waiting);
  });

  it("streams: a response's chunks arrive one by one, and a large upload streams through", async () => {
    await deploy("streams", [web("sse")]);
    const response = await get("/w/main/streams/sse/stream");
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe("data: one\n\n");
    relay.next();
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe("data: two\n\n");
    // Headers reach the client before the first chunk is written.
    const late = await get("/w/main/streams/sse/late");
    expect(late.status).toBe(200);
    relay.next();
    expect(await late.text()).toBe("late");

    const chunk = randomBytes(1024 * 1024);
    const expected = createHash("sha256");
    const uploaded = await new Promise<string>((resolve, reject) => {
      const upload = request(new URL("/w/main/streams/sse/upload", server.url), { method: "POST" }, async (res) => {
        let text = "";
        for await (const part of res) text += part;
        resolve(text);
      });
      upload.on("error", reject);
      let sentChunks = 0;
      const write = () => {
        while (sentChunks < 32) {
          expected.update(chunk);
          sentChunks++;
          if (!upload.write(chunk)) return void upload.once("drain", write);
        }
        upload.end();
      };
      write();
    });
    expect(JSON.parse(uploaded)).toEqual({ bytes: 32 * 1024 * 1024, sha256: expected.digest("hex") });
  });

  it("sends a request again to another container when the relay says its container is gone", async () => {
    await deploy("moving", [{ ...web("retry"), maxInputs: 1, maxContainers: 2, minContainers: 2 }]);
    let containers: string[] = [];
    for (let i = 0; i < 100 && containers.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      containers = [...worker.containers.values()]
        .filter(
          (c) =>
            c.state === "running" &&
            sent.some((m) => m.t === "start" && m.containerId === c.id && m.spec.web?.label === "retry"),
        )
        .map((c) => c.id);
    }
    relay.gone.add(containers[0]!);
    for (let i = 0; i < 4; i++) {
      const response = await get("/w/main/moving/retry/");
      expect(response.status).toBe(200);
      expect(((await response.json()) as { container: string }).container).toBe(containers[1]);
    }
  });

  it("reaches a container straight at its web socket when its worker's relay is in this process", async () => {
    await deploy("near", [{ ...web("direct"), maxInputs: 1, maxContainers: 2, minContainers: 2 }]);
    let containers: string[] = [];
    for (let i = 0; i < 100 && containers.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      containers = [...worker.containers.values()]
        .filter(
          (c) =>
            c.state === "running" &&
            sent.some((m) => m.t === "start" && m.containerId === c.id && m.spec.web?.label === "direct"),
        )
        .map((c) => c.id);
    }
    // Container 0's process has ended (nothing listens on its socket); container 1 answers.
    const live = createServer((req, res) =>
      res.end(JSON.stringify({ path: req.url, secret: req.headers[WEB_RELAY_SECRET_HEADER] ?? null })),
    );
    const livePath = join(dir, "live.sock");
    await new Promise<void>((resolve) => live.listen(livePath, resolve));
    let open = 0;
    let direct: ((id: string) => string | undefined) | undefined = (id) =>
      id === containers[0] ? join(dir, "dead.sock") : id === containers[1] ? livePath : undefined;
    let stopping: (containerId: string) => void = () => {};
    server.attachLocalWebRelay({
      url: relay.url,
      onStopping: (listener) => {
        stopping = listener;
      },
      open: (id) => {
        const socketPath = direct?.(id);
        if (!socketPath) return undefined;
        open++;
        return { socketPath, done: () => open--, accepting: () => true };
      },
    });
    try {
      const before = relay.seen.length;
      for (let i = 0; i < 3; i++) {
        const response = await get("/w/main/near/direct/x?y=1");
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ path: "/x?y=1", secret: null });
      }
      expect(relay.seen.length).toBe(before);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(open).toBe(0);
      // The container stops taking requests: the connection kept alive to it is closed, so its server can end.
      const connections = () => new Promise<number>((resolve) => live.getConnections((_e, n) => resolve(n)));
      expect(await connections()).toBe(1);
      stopping(containers[1]!);
      for (let i = 0; i < 50 && (await connections()) > 0; i++) await new Promise((r) => setTimeout(r, 10));
      expect(await connections()).toBe(0);
    } finally {
      direct = undefined;
      await new Promise((resolve) => live.close(resolve));
    }
  });

  it("sends a request again when a container in this process stops as the kept-alive connection it went out on closes", async () => {
    await deploy("nearby", [{ ...web("handoff"), maxInputs: 1, maxContainers: 2, minContainers: 2 }]);
    let containers: string[] = [];
    for (let i = 0; i < 100 && containers.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      containers = [...worker.containers.values()]
        .filter(
          (c) =>
            c.state === "running" &&
            sent.some((m) => m.t === "start" && m.containerId === c.id && m.spec.web?.label === "handoff"),
        )
        .map((c) => c.id);
    }
    const stopping = new Set<string>();
    const servers = containers.map((id) =>
      createServer((req, res) => {
        // The container stops: it closes this connection without answering, as its server's close does.
        if (req.url === "/second" && !stopping.has(containers[1 - containers.indexOf(id)]!)) {
          stopping.add(id);
          req.socket.destroy();
          return;
        }
        res.end(id);
      }),
    );
    const paths = containers.map((id) => join(dir, `${id}.sock`));
    await Promise.all(servers.map((s, i) => new Promise<void>((resolve) => s.listen(paths[i], resolve))));
    server.attachLocalWebRelay({
      url: relay.url,
      open: (id) => {
        const at = containers.indexOf(id);
        if (at < 0 || stopping.has(id)) return undefined;
        return { socketPath: paths[at]!, done: () => {}, accepting: () => !stopping.has(id) };
      },
      onStopping: () => {},
    });
    try {
      const first = await (await get("/w/main/nearby/handoff/first")).text();
      const second = await get("/w/main/nearby/handoff/second");
      expect(second.status).toBe(200);
      expect([...stopping]).toEqual([first]);
      expect(await second.text()).toBe(containers.find((id) => id !== first));
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });

  it("sends a GET once more on a new connection when the kept-alive one it went out on is reset before any answer", async () => {
    await deploy("resetting", [{ ...web("reset"), maxInputs: 4, maxContainers: 1, minContainers: 1 }]);
    let containerId: string | undefined;
    for (let i = 0; i < 100 && !containerId; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      containerId = [...worker.containers.values()].find(
        (c) =>
          c.state === "running" &&
          sent.some((m) => m.t === "start" && m.containerId === c.id && m.spec.web?.label === "reset"),
      )?.id;
    }
    const socketPath = join(dir, "resetting.sock");
    const seen: string[] = [];
    let resetOnce = true;
    const container = createServer((req, res) => {
      seen.push(`${req.url} ${req.socket.remotePort ?? req.socket.localPort}`);
      // The connection goes just as this request comes on it (its end crossed the request): reset, no answer.
      if (req.url === "/second" && resetOnce) {
        resetOnce = false;
        req.socket.destroy();
        return;
      }
      res.end(`${req.url}`);
    });
    await new Promise<void>((resolve) => container.listen(socketPath, resolve));
    server.attachLocalWebRelay({
      url: relay.url,
      open: (id) => (id === containerId ? { socketPath, done: () => {}, accepting: () => true } : undefined),
      onStopping: () => {},
    });
    try {
      expect(await (await get("/w/main/resetting/reset/first")).text()).toBe("/first");
      const second = await get("/w/main/resetting/reset/second");
      expect(second.status).toBe(200);
      expect(await second.text()).toBe("/second");
      expect(seen.filter((line) => line.startsWith("/second"))).toHaveLength(2);
      // A POST is not sent twice, even on a kept-alive connection: its reset is the client's 502.
      expect(await (await get("/w/main/resetting/reset/third")).text()).toBe("/third");
      resetOnce = true;
      const posted = await fetch(new URL("/w/main/resetting/reset/second", server.url), { method: "POST", body: "x" });
      expect(posted.status).toBe(502);
      expect(seen.filter((line) => line.startsWith("/second"))).toHaveLength(3);
    } finally {
      await new Promise((resolve) => container.close(resolve));
    }
  });

  /** The `start` messages sent since `from` for a label, polled until there are `count` of them. */
  async function startsFor(label: string, count: number, from = 0) {
    let starts: Extract<ServerToWorker, { t: "start" }>[] = [];
    for (let i = 0; i < 100 && starts.length < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      starts = sent
        .slice(from)
        .filter((m): m is Extract<ServerToWorker, { t: "start" }> => m.t === "start" && m.spec.web?.label === label);
    }
    expect(starts.length).toBe(count);
    return starts;
  }
  const containerOf = async (response: Response) => ((await response.json()) as { container: string }).container;

  it("rolls a deploy over: old containers answer until the new version's is ready, then one stops for each new one", async () => {
    autoStart = false;
    await deploy("rolling", [web("roll")]);
    const from = sent.length;
    const first = get("/w/main/rolling/roll/");
    const [old] = await startsFor("roll", 1, from);
    await started(old!.containerId);
    expect(await containerOf(await first)).toBe(old!.containerId);

    // Version 2: a container of it starts, and requests meanwhile go to the old one, not to a queue.
    const at = sent.length;
    await deploy("rolling", [{ ...web("roll"), memoryMiB: 256 }]);
    const [next] = await startsFor("roll", 1, at);
    for (let i = 0; i < 3; i++) expect(await containerOf(await get("/w/main/rolling/roll/"))).toBe(old!.containerId);
    expect(sent.slice(at).some((m) => m.t === "stop")).toBe(false);

    // Once it is ready, the old container is asked to stop (it finishes its requests) and new ones go to it.
    await started(next!.containerId);
    expect(
      sent
        .slice(at)
        .filter((m) => m.t === "stop")
        .map((m) => m.containerId),
    ).toEqual([old!.containerId]);
    expect(await containerOf(await get("/w/main/rolling/roll/"))).toBe(next!.containerId);
  });

  it("hands requests waiting for a function's container to the function a deploy gives its label to", async () => {
    autoStart = false;
    await deploy("renamed", [{ ...web("moved"), name: "before" }]);
    const from = sent.length;
    const waiting = [get("/w/main/renamed/moved/a"), get("/w/main/renamed/moved/b")];
    await startsFor("moved", 1, from);
    const at = sent.length;
    await deploy("renamed", [{ ...web("moved"), name: "after" }]);
    const [heir] = await startsFor("moved", 1, at);
    expect(heir!.spec.name).toBe("after");
    await started(heir!.containerId);
    const answers = await Promise.all(waiting);
    expect(answers.map((r) => r.status)).toEqual([200, 200]);
    for (const answer of answers) expect(await containerOf(answer)).toBe(heir!.containerId);
  });

  it("keeps a renamed function's containers answering at its label until the new function's is ready", async () => {
    autoStart = false;
    await deploy("rename", [{ ...web("kept"), name: "before" }]);
    const from = sent.length;
    const first = get("/w/main/rename/kept/");
    const [old] = await startsFor("kept", 1, from);
    await started(old!.containerId);
    expect(await containerOf(await first)).toBe(old!.containerId);

    const at = sent.length;
    await deploy("rename", [{ ...web("kept"), name: "after" }]);
    const [heir] = await startsFor("kept", 1, at);
    expect(heir!.spec.name).toBe("after");
    for (let i = 0; i < 3; i++) expect(await containerOf(await get("/w/main/rename/kept/"))).toBe(old!.containerId);
    expect(sent.slice(at).some((m) => m.t === "stop")).toBe(false);
    await started(heir!.containerId);
    expect(
      sent
        .slice(at)
        .filter((m) => m.t === "stop")
        .map((m) => m.containerId),
    ).toEqual([old!.containerId]);
    expect(await containerOf(await get("/w/main/rename/kept/"))).toBe(heir!.containerId);
  });

  it("takes a WebSocket straight to a container's web socket when its worker's relay is in this process, by path and by host", async () => {
    await deploy("near-ws", [{ ...web("live"), maxContainers: 1, minContainers: 1 }]);
    let container: string | undefined;
    for (let i = 0; i < 100 && !container; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      container = [...worker.containers.values()].find(
        (c) =>
          c.state === "running" &&
          sent.some((m) => m.t === "start" && m.containerId === c.id && m.spec.web?.label === "live"),
      )?.id;
    }
    const http = createServer();
    const sockets = new WebSocketServer({ server: http });
    sockets.on("connection", (ws, req) =>
      ws.on("message", (data) => ws.send(`${req.url} ${req.headers[WEB_RELAY_SECRET_HEADER] ?? "-"} ${data}`)),
    );
    const socketPath = join(dir, "live-ws.sock");
    await new Promise<void>((resolve) => http.listen(socketPath, resolve));
    let open = 0;
    let direct = true;
    server.attachLocalWebRelay({
      url: relay.url,
      open: (id) => {
        if (!direct || id !== container) return undefined;
        open++;
        return { socketPath, done: () => open--, accepting: () => direct };
      },
      onStopping: () => {},
    });
    try {
      const before = relay.seen.length;
      const { ws } = await opened("/w/main/near-ws/live/room?x=1");
      expect(open).toBe(1);
      ws.send("hi");
      expect((await nextMessage(ws)).data.toString()).toBe("/room?x=1 - hi");
      ws.close();
      await closed(ws);
      const byHost = await new Promise<WebSocket>((resolve, reject) => {
        const client = new WebSocket(`${server.url.replace("http", "ws")}/lobby`, {
          headers: { host: "live-near-ws.main.apps.test" },
        });
        client.once("open", () => resolve(client)).once("error", reject);
      });
      byHost.send("there");
      expect((await nextMessage(byHost)).data.toString()).toBe("/lobby - there");
      byHost.terminate();
      expect(relay.seen.length).toBe(before);
      await until(() => open === 0 && slots().inFlightOf(container!) === 0);
    } finally {
      direct = false;
      for (const client of sockets.clients) client.terminate();
      await new Promise((resolve) => http.close(resolve));
    }
  });

  it("answers 502 naming the request id when the container fails before answering, and cuts a response it fails in", async () => {
    await deploy("fragile", [web("crash")]);
    const response = await get("/w/main/fragile/crash/die");
    expect(response.status).toBe(502);
    const { error } = (await response.json()) as { error: { message: string; requestId: string } };
    expect(error.requestId).toBe(response.headers.get(REQUEST_ID_HEADER));
    expect(error.message).toContain(error.requestId);
    const mid = await get("/w/main/fragile/crash/die-mid");
    expect(mid.status).toBe(200);
    await expect(mid.text()).rejects.toThrow();
    expect((await get("/w/main/fragile/crash/")).status).toBe(200);
  });

  it("answers a request still running after redirectAfter 303 to a result URL that gets its answer once", async () => {
    await deploy("long", [{ ...web("job", { redirectAfterMs: 200 }), maxInputs: 1, maxContainers: 1 }]);
    await deploy("other", [web("elsewhere")]);
    const first = await fetch(new URL("/w/main/long/job/held", server.url), {
      method: "POST",
      body: "payload",
      redirect: "manual",
    });
    expect(first.status).toBe(303);
    const requestId = first.headers.get(REQUEST_ID_HEADER)!;
    const location = first.headers.get("location")!;
    expect(location).toBe(`/w/main/long/job/__skiff/result/${requestId}`);
    expect(await first.json()).toMatchObject({ status: "running", location, requestId });
    // Nothing yet: the client is sent to the same URL again after redirectAfter.
    const again = await fetch(new URL(location, server.url), { redirect: "manual" });
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe(location);
    await again.text();
    // Another function's URL does not have it.
    const elsewhere = await fetch(new URL(`/w/main/other/elsewhere/__skiff/result/${requestId}`, server.url));
    expect(elsewhere.status).toBe(404);
    // The answer comes while a client waits at the result URL.
    const waiting = fetch(new URL(location, server.url), { redirect: "manual" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    relay.next();
    const done = await waiting;
    expect(done.status).toBe(200);
    expect(await done.json()).toEqual({ done: true, body: "payload", method: "POST" });
    // Fetched once; and the container's one slot is free again.
    expect((await fetch(new URL(location, server.url))).status).toBe(404);
    const followed = fetch(new URL("/w/main/long/job/held", server.url), { method: "POST", body: "two" });
    await new Promise((resolve) => setTimeout(resolve, 300));
    relay.next();
    const answer = await followed;
    expect(answer.status).toBe(200);
    expect(answer.url).toContain("/__skiff/result/");
    expect(await answer.json()).toEqual({ done: true, body: "two", method: "POST" });
  });

  it("keeps a request's answer at its result URL while no client waits, and sends it when one comes", async () => {
    await deploy("later", [web("job", { redirectAfterMs: 100 })]);
    const first = await fetch(new URL("/w/main/later/job/held", server.url), { method: "POST", redirect: "manual" });
    expect(first.status).toBe(303);
    await first.text();
    relay.next();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const result = await fetch(new URL(first.headers.get("location")!, server.url));
    expect(result.status).toBe(200);
    expect(await result.json()).toMatchObject({ done: true });
  });

  it("keeps a parked answer at its result URL through deploys that rename the function, move its label or drop its proxy auth", async () => {
    const proxy = await server.tokens.create({ kind: "proxy", name: "p", workspace: LOCAL_WORKSPACE });
    const auth = { "skiff-key": proxy.token.id, "skiff-secret": proxy.secret };
    const job = (name: string, label: string, more: Partial<WebSpec> = {}) => ({
      ...web(label, { redirectAfterMs: 100, ...more }),
      name,
    });
    const park = async (body: string, headers: Record<string, string> = {}) => {
      const first = await fetch(new URL("/w/main/moving/job/held", server.url), {
        method: "POST",
        body,
        headers,
        redirect: "manual",
      });
      expect(first.status).toBe(303);
      await first.text();
      return first.headers.get("location")!;
    };
    // Followed as a client does: it waits at the result URL, is sent there again, until the answer comes.
    const collect = async (location: string, headers: Record<string, string> = {}) => {
      const answer = fetch(new URL(location, server.url), { headers });
      relay.next();
      return answer;
    };

    await deploy("moving", [job("before", "job", { requiresProxyAuth: true })]);
    const first = await park("a", auth);
    // Renamed: the function that has the label now has another id, and asks for no proxy auth.
    await deploy("moving", [job("after", "job")]);
    expect((await get(first)).status).toBe(401);
    const a = await collect(first, auth);
    expect(a.status).toBe(200);
    expect(await a.json()).toEqual({ done: true, body: "a", method: "POST" });

    const second = await park("b");
    // The label moves on: nothing answers at the URL any more, but for the answer parked there.
    await deploy("moving", [job("after", "moved-on")]);
    expect((await get("/w/main/moving/job/")).status).toBe(404);
    const b = await collect(second);
    expect(b.status).toBe(200);
    expect(await b.json()).toEqual({ done: true, body: "b", method: "POST" });
    expect((await get(second)).status).toBe(404);
  });

  it("logs each request to the app's log watchers, and refuses calls to a web function with its URL", async () => {
    const { app, functions } = await deploy("logged", [web("seen")]);
    const lines: LogLine[] = [];
    const watcher: Subscriber = { pushResults: () => {}, pushLogs: (more) => lines.push(...more), endLogs: () => {} };
    await server.control.subscribeLogs(LOCAL_WORKSPACE, app.id, watcher);
    await (await get("/w/main/logged/seen/page?q=1")).text();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines.map((l) => l.line).find((l) => l.startsWith("GET /page?q=1 200"))).toMatch(/ \d+ms$/);
    expect(lines.every((l) => l.stream === "system" && l.containerId.startsWith("ct-"))).toBe(true);
    server.control.removeSubscriber(watcher);
    const call = server.control.submit(
      {
        t: "submit",
        rid: 1,
        functionId: functions[0]!.id,
        callId: "00000000-0000-4000-8000-00000000000a",
        total: 1,
        subscribe: false,
        resent: false,
        inputs: [{ idx: 0, args: { inline: new Uint8Array([0x80]) } }],
      },
      undefined,
      { workspace: LOCAL_WORKSPACE },
    );
    await expect(call).rejects.toThrow("call it over HTTP at /w/main/logged/seen");
  });

  // Last: it closes the server.
  it("cuts open WebSockets when the server closes, rather than waiting for them", async () => {
    await deploy("lingering", [web("open")]);
    const { ws } = await opened("/w/main/lingering/open/ws");
    const container = relay.seen.at(-1)!.container;
    const cut = closed(ws);
    const started = performance.now();
    serverClosed = true;
    await server.close();
    // Without the gateway cutting it, the close would wait for the socket for good; the earlier tests'
    // connections take the HTTP server's close ~3 s as it is.
    expect(performance.now() - started).toBeLessThan(10_000);
    expect((await cut).code).toBe(1006);
    await until(() => (relay.sockets.get(container) ?? 0) === 0);
  });
});
