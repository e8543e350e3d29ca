import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent, type IncomingMessage, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { App } from "../../app.js";
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

const serve = async (fetch: (request: Request) => Response | Promise<Response>, maxConcurrent = 4) => {
  const socketPath = join(dir, "web.sock");
  serving = await serveFetch({ socketPath, fetch, maxConcurrent, timeoutMs: 5_000 });
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
