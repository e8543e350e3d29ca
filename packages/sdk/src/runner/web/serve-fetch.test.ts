import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { z } from "zod";
import { App } from "../../app.js";
import { upgradeWebSocket, type WebSocketCloseEvent, type WebSocketLike } from "../../web/websocket.js";
import { serveFetch } from "./serve-fetch.js";
import type { WebServing } from "./web-serving.js";

let dir: string;
let serving: WebServing | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-web-"));
});
afterEach(async () => {
  await serving?.close();
  serving = undefined;
  await rm(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

const serve = async (
  fetch: (request: Request) => Response | Promise<Response>,
  maxConcurrent = 4,
  websockets = true,
) => {
  const socketPath = join(dir, "web.sock");
  serving = await serveFetch({ socketPath, fetch, maxConcurrent, timeoutMs: 5_000, websockets });
  return socketPath;
};

/** A request on the Unix socket; resolves with the response once its headers come. */
const open = (socketPath: string, path: string, init: { method?: string; headers?: Record<string, string> } = {}) => {
  const req = request({ socketPath, path, method: init.method ?? "GET", headers: init.headers });
  const response = new Promise<IncomingMessage>((resolve, reject) => req.on("response", resolve).on("error", reject));
  return { req, response };
};

const text = async (res: IncomingMessage) => {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
};

describe("serveFetch", () => {
  it("gives the handler the path, query, method and headers, and answers with its Response", async () => {
    const socketPath = await serve(async (r) => {
      const url = new URL(r.url);
      return Response.json({
        path: url.pathname,
        q: url.searchParams.get("q"),
        method: r.method,
        h: r.headers.get("x-a"),
      });
    });
    const { req, response } = open(socketPath, "/a/b?q=1", { method: "DELETE", headers: { "x-a": "z", host: "h" } });
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain("application/json");
    expect(JSON.parse(await text(res))).toEqual({ path: "/a/b", q: "1", method: "DELETE", h: "z" });
  });

  it("answers HEAD with the handler's status and headers, without reading its body (even an endless one)", async () => {
    let pulled = 0;
    const socketPath = await serve(
      () =>
        new Response(new ReadableStream({ pull: (controller) => controller.enqueue(new Uint8Array(++pulled)) }), {
          status: 202,
          headers: { "x-kind": "events" },
        }),
    );
    const { req, response } = open(socketPath, "/", { method: "HEAD", headers: { host: "h" } });
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(202);
    expect(res.headers["x-kind"]).toBe("events");
    expect(await text(res)).toBe("");
    expect(pulled).toBeLessThan(3);
  });

  it("streams a response chunk by chunk as the handler writes it", async () => {
    let release!: () => void;
    const second = new Promise<void>((resolve) => {
      release = resolve;
    });
    const socketPath = await serve(() => {
      const body = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(new TextEncoder().encode("data: one\n\n"));
          // The second event is made only once the client has the first: buffering would hang here.
          await second;
          controller.enqueue(new TextEncoder().encode("data: two\n\n"));
          controller.close();
        },
      });
      return new Response(body, { headers: { "content-type": "text/event-stream" } });
    });
    const { req, response } = open(socketPath, "/events");
    req.end();
    const res = await response;
    expect(res.headers["content-type"]).toBe("text/event-stream");
    const seen: string[] = [];
    for await (const chunk of res) {
      seen.push((chunk as Buffer).toString());
      if (seen.length === 1) release();
    }
    expect(seen).toEqual(["data: one\n\n", "data: two\n\n"]);
  });

  it("streams a large upload to the handler with backpressure, never holding it whole", async () => {
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const total = 48;
    let read = 0;
    let resume!: () => void;
    const paused = new Promise<void>((resolve) => {
      resume = resolve;
    });
    const socketPath = await serve(async (r) => {
      const hash = createHash("sha256");
      for await (const part of r.body as unknown as AsyncIterable<Uint8Array>) {
        hash.update(part);
        read += part.byteLength;
        if (read >= 4 * chunk.length && read - part.byteLength < 4 * chunk.length) {
          await paused;
        }
      }
      return new Response(hash.digest("hex"));
    });
    const { req, response } = open(socketPath, "/upload", { method: "POST" });
    const expected = createHash("sha256");
    let written = 0;
    const write = () =>
      new Promise<boolean>((resolve) => {
        expected.update(chunk);
        written += chunk.length;
        if (req.write(chunk)) resolve(true);
        else {
          const timer = setTimeout(() => resolve(false), 300);
          req.once("drain", () => {
            clearTimeout(timer);
            resolve(true);
          });
        }
      });
    // While the handler does not read, the sender stalls: what it got ahead is bounded by socket buffers.
    let stalled = false;
    while (written < total * chunk.length) {
      if (!(await write())) {
        stalled = true;
        break;
      }
    }
    expect(stalled).toBe(true);
    expect(read).toBeGreaterThanOrEqual(4 * chunk.length);
    expect(written - read).toBeLessThan(16 * chunk.length);
    resume();
    req.once("drain", function more() {
      while (written < total * chunk.length) {
        expected.update(chunk);
        written += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", more);
      }
      req.end();
    });
    const res = await response;
    expect(await text(res)).toBe(expected.digest("hex"));
    expect(read).toBe(total * chunk.length);
  });

  it("answers a handler's throw with 500 and the request id, its stack only in the logs", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const socketPath = await serve(() => {
      throw new Error("secret detail");
    });
    const { req, response } = open(socketPath, "/", { headers: { "x-skiff-request-id": "req-42" } });
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(500);
    expect(res.headers["x-skiff-request-id"]).toBe("req-42");
    const body = await text(res);
    expect(JSON.parse(body)).toEqual({
      error: { code: "INTERNAL", message: "the handler failed", requestId: "req-42" },
    });
    expect(body).not.toContain("secret detail");
    expect(logged).toHaveBeenCalledWith(expect.stringContaining("req-42"), expect.any(Error));
  });

  it("answers an app.web handler's async iterable with 500, the logs saying to wrap it with streamResponse", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    const site = new App("site").web({}, async function* () {
      yield "chunk";
    } as never);
    const socketPath = await serve(site.fetch!);
    const { req, response } = open(socketPath, "/", { headers: { "x-skiff-request-id": "req-43" } });
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(500);
    expect(JSON.parse(await text(res))).toMatchObject({ error: { code: "INTERNAL", requestId: "req-43" } });
    expect(logged).toHaveBeenCalledWith(
      expect.stringContaining("req-43"),
      expect.objectContaining({ message: expect.stringContaining("streamResponse(iterable, request)") }),
    );
  });

  it("answers an endpoint's 413 to a large upload it does not read, and the connection serves the next request", async () => {
    const app = new App("t");
    const upload = app.endpoint({ maxBodySize: "1KiB", body: z.object({}) }, () => "read");
    const socketPath = await serve((request) => upload.local(request));
    // One connection for both requests: the second must not wait behind the first's unread body.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = request({ socketPath, path: "/", method: "POST", agent });
      const answered = new Promise<IncomingMessage>((resolve, reject) =>
        first.on("response", resolve).on("error", reject),
      );
      first.write(Buffer.alloc(512 * 1024, 32));
      const res = await answered;
      expect(res.statusCode).toBe(413);
      expect(res.headers.connection).not.toBe("close");
      expect(JSON.parse(await text(res)).error.code).toBe("PAYLOAD_TOO_LARGE");
      first.end(Buffer.alloc(512 * 1024, 32));
      const second = request({ socketPath, path: "/docs", method: "GET", agent });
      second.end();
      const next = await new Promise<IncomingMessage>((resolve, reject) =>
        second.on("response", resolve).on("error", reject),
      );
      expect(next.statusCode).toBe(404);
      await text(next);
    } finally {
      agent.destroy();
    }
  });

  it("runs at most maxConcurrent requests at once; the others wait their turn", async () => {
    let running = 0;
    let most = 0;
    const socketPath = await serve(async () => {
      running++;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 30));
      running--;
      return new Response("ok");
    }, 2);
    const answers = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const { req, response } = open(socketPath, "/");
        req.end();
        return text(await response);
      }),
    );
    expect(answers).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect(most).toBe(2);
  });

  it("closes once the requests in flight are answered", async () => {
    let finish!: () => void;
    const socketPath = await serve(
      () => new Promise<Response>((resolve) => (finish = () => resolve(new Response("late")))),
    );
    const { req, response } = open(socketPath, "/");
    req.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const closed = serving!.close();
    serving = undefined;
    let done = false;
    void closed.then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(done).toBe(false);
    finish();
    expect(await text(await response)).toBe("late");
    await closed;
  });
});

/** A WebSocket client on the runner's Unix socket: open, or the HTTP answer it got instead. */
const dial = (socketPath: string, path: string, protocols: string[] = []) =>
  new Promise<{ ws: WebSocket; headers: IncomingMessage["headers"] } | { status: number; body: string }>(
    (resolve, reject) => {
      const ws = new WebSocket(`ws+unix://${socketPath}:${path}`, protocols);
      ws.once("upgrade", (res) => ws.once("open", () => resolve({ ws, headers: res.headers })));
      ws.once("unexpected-response", async (_req, res) =>
        resolve({ status: res.statusCode ?? 0, body: await text(res) }),
      );
      ws.once("error", reject);
    },
  );
const dialOpen = async (socketPath: string, path: string, protocols: string[] = []) => {
  const result = await dial(socketPath, path, protocols);
  if (!("ws" in result)) throw new Error(`no upgrade: ${result.status} ${result.body}`);
  return result;
};
const message = (ws: WebSocket) =>
  new Promise<{ data: Buffer; isBinary: boolean }>((resolve) =>
    ws.once("message", (data, isBinary) => resolve({ data: data as Buffer, isBinary })),
  );
const closedWith = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );

/** An echo handler at /ws, as users write one: text back as text, binary back as binary, "close C R" closes. */
const echo =
  (sockets: WebSocketLike[] = [], closes: WebSocketCloseEvent[] = []) =>
  (request: Request) => {
    if (new URL(request.url).pathname !== "/ws") return new Response("not here", { status: 404 });
    if (request.headers.get("upgrade") !== "websocket") return new Response("a WebSocket lives here", { status: 426 });
    const { socket, response } = upgradeWebSocket(request);
    sockets.push(socket);
    socket.addEventListener("message", (event) => {
      if (typeof event.data === "string" && event.data.startsWith("close ")) {
        const [, code, ...reason] = event.data.split(" ");
        socket.close(Number(code), reason.join(" "));
      } else socket.send(event.data);
    });
    socket.onclose = (event) => closes.push(event);
    return response;
  };

describe("serveFetch WebSockets", () => {
  it("echoes text and binary messages (1 MiB), and passes close codes both ways", async () => {
    const closes: WebSocketCloseEvent[] = [];
    const socketPath = await serve(echo([], closes));
    const { ws } = await dialOpen(socketPath, "/ws");
    ws.send("hello");
    expect(await message(ws)).toEqual({ data: Buffer.from("hello"), isBinary: false });
    const big = Buffer.alloc(1024 * 1024, 3);
    big[12345] = 9;
    ws.send(big);
    const back = await message(ws);
    expect(back.isBinary).toBe(true);
    expect(back.data.equals(big)).toBe(true);
    // The handler closes with a code: the client gets it.
    ws.send("close 4002 done here");
    expect(await closedWith(ws)).toEqual({ code: 4002, reason: "done here" });
    // The client closes with a code: the handler's socket gets it.
    const second = (await dialOpen(socketPath, "/ws")).ws;
    second.close(4001, "bye");
    await closedWith(second);
    await vi.waitFor(() =>
      expect(closes.map((c) => [c.code, c.reason, c.wasClean])).toContainEqual([4001, "bye", true]),
    );
  });

  it("answers a handshake the handler does not accept with its Response, and a plain request as usual", async () => {
    const socketPath = await serve(echo());
    const elsewhere = await dial(socketPath, "/nope");
    expect(elsewhere).toEqual({ status: 404, body: "not here" });
    const { req, response } = open(socketPath, "/ws");
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(426);
    expect(await text(res)).toBe("a WebSocket lives here");
  });

  it("throws a clear error when upgradeWebSocket is called on a request that is not a handshake", async () => {
    const socketPath = await serve((request) => {
      try {
        upgradeWebSocket(request);
        return new Response("upgraded?");
      } catch (error) {
        return new Response((error as Error).message, { status: 400 });
      }
    });
    const { req, response } = open(socketPath, "/ws");
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(400);
    expect(await text(res)).toContain("not a WebSocket handshake");
    // Outside the runner (a test, `.local()`), a handshake's Request has nothing to upgrade.
    const local = new Request("http://localhost/ws", { headers: { upgrade: "websocket" } });
    expect(() => upgradeWebSocket(local)).toThrow("did not come from Skiff's web runner");
  });

  it("holds its slot while open: with maxConcurrent 1 a request waits until the socket closes", async () => {
    const socketPath = await serve(
      (request) => (request.headers.get("upgrade") ? echo()(request) : new Response("ok")),
      1,
    );
    const { ws } = await dialOpen(socketPath, "/ws");
    const { req, response } = open(socketPath, "/plain");
    req.end();
    let answered = false;
    void response.then(() => {
      answered = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(answered).toBe(false);
    ws.close(1000);
    expect(await text(await response)).toBe("ok");
    // And the next socket gets the slot.
    const next = (await dialOpen(socketPath, "/ws")).ws;
    next.terminate();
  });

  it("accepts the subprotocol the handler picks, keeps the headers a framework adds, and opens the socket", async () => {
    let opened = false;
    const socketPath = await serve((request) => {
      const { socket, response } = upgradeWebSocket(request, { protocol: "chat.v2" });
      socket.onopen = () => {
        opened = true;
      };
      socket.onmessage = () => socket.send(`open: ${socket.readyState} ${socket.protocol} ${socket.url}`);
      // What Hono does when a middleware set a header: a copy of the Response, with the header added.
      const copy = new Response(response.body, response);
      copy.headers.set("set-cookie", "session=1");
      return copy;
    });
    const { ws, headers } = await dialOpen(socketPath, "/ws", ["chat.v1", "chat.v2"]);
    expect(ws.protocol).toBe("chat.v2");
    expect(headers["set-cookie"]).toEqual(["session=1"]);
    expect(headers["x-skiff-websocket-upgrade"]).toBeUndefined();
    ws.send("hi");
    expect((await message(ws)).data.toString()).toBe("open: 1 chat.v2 ws://localhost/ws");
    expect(opened).toBe(true);
    ws.close();
  });

  it("gives binary messages as the socket's binaryType says, and sends a Blob after earlier messages", async () => {
    const socketPath = await serve((request) => {
      const { socket, response } = upgradeWebSocket(request);
      socket.binaryType = "blob";
      socket.onmessage = async (event) => {
        const blob = event.data as Blob;
        socket.send(`${blob instanceof Blob} ${blob.size}`);
        socket.send(blob);
        socket.send("after");
      };
      return response;
    });
    const { ws } = await dialOpen(socketPath, "/ws");
    const seen: string[] = [];
    const three = new Promise<void>((resolve) =>
      ws.on("message", (data, isBinary) => {
        seen.push(isBinary ? `binary ${(data as Buffer).length}` : data.toString());
        if (seen.length === 3) resolve();
      }),
    );
    ws.send(Buffer.alloc(10));
    await three;
    expect(seen).toEqual(["true 10", "binary 10", "after"]);
    ws.close();
  });

  it("refuses an invalid handshake with 400, and tells the socket when the handler returned another response", async () => {
    const closes: WebSocketCloseEvent[] = [];
    const socketPath = await serve((request) => {
      const { socket } = upgradeWebSocket(request);
      socket.onclose = (event) => closes.push(event);
      return new Response("changed my mind", { status: 403 });
    });
    expect(await dial(socketPath, "/ws")).toEqual({ status: 403, body: "changed my mind" });
    expect(closes.map((c) => [c.code, c.wasClean])).toEqual([[1006, false]]);
    const { req, response } = open(socketPath, "/ws", {
      headers: { connection: "upgrade", upgrade: "websocket", "sec-websocket-version": "13" },
    });
    req.end();
    const res = await response;
    expect(res.statusCode).toBe(400);
    expect(await text(res)).toContain("Sec-WebSocket-Key");
  });

  it("logs a listener that throws, and the container and its other sockets go on", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const socketPath = await serve((request) => {
      const { socket, response } = upgradeWebSocket(request);
      socket.addEventListener("message", () => {
        throw new Error("listener broke");
      });
      socket.addEventListener("message", (event) => socket.send(event.data));
      return response;
    });
    const { ws } = await dialOpen(socketPath, "/ws");
    ws.send("still here");
    expect((await message(ws)).data.toString()).toBe("still here");
    expect(String(errors.mock.calls[0]?.[1])).toContain("listener broke");
    ws.close();
  });

  it("closes open sockets with 1001 when it closes", async () => {
    const socketPath = await serve(echo());
    const { ws } = await dialOpen(socketPath, "/ws");
    const closing = closedWith(ws);
    const done = serving!.close();
    serving = undefined;
    expect(await closing).toEqual({ code: 1001, reason: "the container is stopping" });
    await done;
  });

  it("leaves a handshake to the handler as a plain request where WebSockets are off (app.endpoint)", async () => {
    const socketPath = await serve(
      (request) =>
        new Response(
          `plain ${(request as unknown as Record<symbol, unknown>)[Symbol.for("skiff.web.upgradeWebSocket")] === undefined}`,
        ),
      4,
      false,
    );
    expect(await dial(socketPath, "/ws")).toEqual({ status: 200, body: "plain true" });
  });
});
