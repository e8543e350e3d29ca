import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { WEB_RELAY_SECRET_HEADER } from "@skiff/protocol";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebRelay, type WebRelayAddress, type WebTarget } from "./web-relay.js";

const MiB = 1024 * 1024;

/** A container's runner as the relay sees it: an HTTP server on a Unix socket, answering with `handler`. */
class FakeContainer implements WebTarget {
  acceptsRequests = true;
  readonly webSocketPath: string;
  open = 0;
  begun = 0;
  handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end("ok");
  upgrade: ((req: IncomingMessage, socket: Socket, head: Buffer) => void) | undefined;
  private readonly server: Server;

  constructor(dir: string) {
    this.webSocketPath = join(dir, "web.sock");
    this.server = createServer((req, res) => this.handler(req, res));
    this.server.on("upgrade", (req, socket: Socket, head) => this.upgrade?.(req, socket, head));
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.webSocketPath, resolve));
  }

  /** Connections open to its server now. */
  connections(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
    );
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  beginRequest(): void {
    this.open++;
    this.begun++;
  }

  endRequest(): void {
    this.open--;
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

let dir: string;
let container: FakeContainer;
let relay: WebRelay;
let address: WebRelayAddress;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "skiff-web-relay-"));
  container = new FakeContainer(dir);
  await container.listen();
  relay = new WebRelay({
    log: pino({ level: "silent" }),
    target: (id) => (id === "ct-1" ? container : undefined),
  });
  address = await relay.start();
});

afterEach(async () => {
  await relay.close();
  await container.close();
  await rm(dir, { recursive: true, force: true });
});

/** A request to the relay, with its secret unless `headers` says otherwise. */
function send(
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, address.url), {
      method: options.method ?? "GET",
      agent: false,
      headers: { [WEB_RELAY_SECRET_HEADER]: address.secret, ...options.headers },
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; !condition(); i++) {
    if (i > 5000) throw new Error(`timed out waiting until ${what}`);
    await sleep(1);
  }
}

describe("web relay", () => {
  it("listens on loopback with a 32-byte secret", () => {
    expect(address.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(address.secret).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a request without the secret or with a wrong one", async () => {
    const none = await send("/containers/ct-1/", { headers: { [WEB_RELAY_SECRET_HEADER]: "" } });
    expect(none.status).toBe(401);
    const wrong = await send("/containers/ct-1/", { headers: { [WEB_RELAY_SECRET_HEADER]: "0".repeat(64) } });
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).error.code).toBe("UNAUTHORIZED");
    expect(container.begun).toBe(0);
  });

  it("answers 503 UNAVAILABLE for an unknown container and for one that takes no requests", async () => {
    const unknown = await send("/containers/ct-2/hello");
    expect(unknown.status).toBe(503);
    expect(JSON.parse(unknown.body).error.code).toBe("UNAVAILABLE");
    expect((await send("/containers/%E0%A4%A/hello")).status).toBe(503);
    container.acceptsRequests = false;
    const stopping = await send("/containers/ct-1/hello");
    expect(stopping.status).toBe(503);
    expect(JSON.parse(stopping.body).error.code).toBe("UNAVAILABLE");
  });

  it("passes the method, path, query and headers on, but not the secret nor hop-by-hop headers", async () => {
    let seen: { method?: string; url?: string; headers: IncomingHttpHeaders } | undefined;
    container.handler = (req, res) => {
      seen = { method: req.method, url: req.url, headers: req.headers };
      req.resume();
      res.writeHead(201, { "x-answer": "yes", "set-cookie": ["a=1", "b=2"] }).end("made");
    };
    const answer = await send("/containers/ct-1/items/7?full=1&x=%20", {
      method: "PUT",
      headers: { "x-custom": "kept", "keep-alive": "timeout=5", "proxy-authorization": "Basic eA==" },
      body: "{}",
    });
    expect(answer).toMatchObject({ status: 201, body: "made" });
    expect(answer.headers["x-answer"]).toBe("yes");
    expect(answer.headers["set-cookie"]).toEqual(["a=1", "b=2"]);
    expect(seen?.method).toBe("PUT");
    expect(seen?.url).toBe("/items/7?full=1&x=%20");
    expect(seen?.headers["x-custom"]).toBe("kept");
    expect(seen?.headers[WEB_RELAY_SECRET_HEADER]).toBeUndefined();
    expect(seen?.headers["keep-alive"]).toBeUndefined();
    expect(seen?.headers["proxy-authorization"]).toBeUndefined();
    const root = await send("/containers/ct-1?q=1");
    expect(root.status).toBe(201);
    expect(seen).toMatchObject({ url: "/?q=1" });
  });

  it("counts each request as open until its answer is sent", async () => {
    let finish!: () => void;
    container.handler = (_req, res) => {
      finish = () => res.end("done");
    };
    const answer = send("/containers/ct-1/slow");
    await until(() => container.open === 1 && finish !== undefined, "the request is open");
    finish();
    expect((await answer).body).toBe("done");
    await until(() => container.open === 0, "the request ended");
    expect(container.begun).toBe(1);
  });

  it("streams a 50 MiB upload: each chunk reaches the container before the next is sent", async () => {
    const hash = createHash("sha256");
    let received = 0;
    container.handler = (req, res) => {
      const inContainer = createHash("sha256");
      req.on("data", (chunk: Buffer) => {
        received += chunk.length;
        inContainer.update(chunk);
      });
      req.on("end", () => res.end(inContainer.digest("hex")));
    };
    const answer = new Promise<string>((resolve, reject) => {
      const req = request(new URL("/containers/ct-1/upload", address.url), {
        method: "POST",
        agent: false,
        headers: { [WEB_RELAY_SECRET_HEADER]: address.secret },
      });
      req.on("response", (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk;
        });
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
      void (async () => {
        for (let i = 0; i < 50; i++) {
          const chunk = Buffer.alloc(MiB, i);
          hash.update(chunk);
          req.write(chunk);
          // Nothing more goes in until the container has it all: a relay that held the body back would stall here.
          await until(() => received === (i + 1) * MiB, `chunk ${i} reached the container`);
        }
        req.end();
      })().catch(reject);
    });
    expect(await answer).toBe(hash.digest("hex"));
  });

  it("streams a 50 MiB download: each chunk reaches the client before the next is written", async () => {
    let received = 0;
    const hash = createHash("sha256");
    container.handler = (_req, res) => {
      void (async () => {
        for (let i = 0; i < 50; i++) {
          const chunk = Buffer.alloc(MiB, i);
          hash.update(chunk);
          res.write(chunk);
          await until(() => received === (i + 1) * MiB, `chunk ${i} reached the client`);
        }
        res.end();
      })();
    };
    const digest = await new Promise<string>((resolve, reject) => {
      const req = request(new URL("/containers/ct-1/download", address.url), {
        agent: false,
        headers: { [WEB_RELAY_SECRET_HEADER]: address.secret },
      });
      req.on("response", (res) => {
        const inClient = createHash("sha256");
        res.on("data", (chunk: Buffer) => {
          received += chunk.length;
          inClient.update(chunk);
        });
        res.on("end", () => resolve(inClient.digest("hex")));
      });
      req.on("error", reject);
      req.end();
    });
    expect(digest).toBe(hash.digest("hex"));
  });

  it("flushes server-sent events one by one, with the headers first", async () => {
    const events: string[] = [];
    let headersArrived = false;
    container.handler = (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
      res.flushHeaders();
      void (async () => {
        await until(() => headersArrived, "the headers reached the client");
        for (let i = 0; i < 5; i++) {
          res.write(`data: ${i}\n\n`);
          await until(() => events.length === i + 1, `event ${i} reached the client`);
        }
        res.end();
      })();
    };
    await new Promise<void>((resolve, reject) => {
      const req = request(new URL("/containers/ct-1/events", address.url), {
        agent: false,
        headers: { [WEB_RELAY_SECRET_HEADER]: address.secret, accept: "text/event-stream" },
      });
      req.on("response", (res) => {
        expect(res.headers["content-type"]).toBe("text/event-stream");
        headersArrived = true;
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => events.push(chunk));
        res.on("end", () => resolve());
      });
      req.on("error", reject);
      req.end();
    });
    expect(events).toEqual(["data: 0\n\n", "data: 1\n\n", "data: 2\n\n", "data: 3\n\n", "data: 4\n\n"]);
  });

  it("answers 502 when the container's server fails before it answers", async () => {
    container.handler = (req) => req.socket.destroy();
    const answer = await send("/containers/ct-1/crash", { headers: { "x-skiff-request-id": "req-9" } });
    expect(answer.status).toBe(502);
    expect(JSON.parse(answer.body).error).toMatchObject({ code: "CONTAINER_CRASHED", requestId: "req-9" });
    expect(JSON.parse(answer.body).error.message).toContain("request req-9");
    await until(() => container.open === 0, "the request ended");
  });

  it("answers 503 UNAVAILABLE when nothing listens on the container's socket any more (its process ended)", async () => {
    await container.close();
    const answer = await send("/containers/ct-1/after-exit");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).error.code).toBe("UNAVAILABLE");
    await until(() => container.open === 0, "the request ended");
  });

  it("answers 503 UNAVAILABLE when a stopping container closes the kept-alive connection a request goes out on", async () => {
    expect((await send("/containers/ct-1/first")).status).toBe(200);
    // The relay sends the next request on the connection it kept; the container stops and closes it unanswered.
    container.handler = (req) => {
      container.acceptsRequests = false;
      req.socket.destroy();
    };
    const answer = await send("/containers/ct-1/second");
    expect(answer.status).toBe(503);
    expect(JSON.parse(answer.body).error.code).toBe("UNAVAILABLE");
    await until(() => container.open === 0, "the request ended");
  });

  it("lets go of a stopping container's connections: idle ones at once, busy ones once answered", async () => {
    // Two requests at once leave two connections kept alive; the next request takes one of them.
    const held: ServerResponse[] = [];
    container.handler = (_req, res) => void held.push(res);
    const first = [send("/containers/ct-1/a"), send("/containers/ct-1/b")];
    await until(() => held.length === 2, "both requests reached the container");
    for (const res of held.splice(0)) res.end("ok");
    expect((await Promise.all(first)).map((a) => a.status)).toEqual([200, 200]);
    const busy = send("/containers/ct-1/busy");
    const answer = () => held[0]?.end("late");
    await until(() => container.open === 1, "the busy request reached the container");
    expect(await container.connections()).toBe(2);
    container.acceptsRequests = false;
    relay.drain("ct-1");
    for (let i = 0; i < 500 && (await container.connections()) > 1; i++) await sleep(2);
    expect(await container.connections()).toBe(1);
    answer();
    expect((await busy).body).toBe("late");
    for (let i = 0; i < 500 && (await container.connections()) > 0; i++) await sleep(2);
    expect(await container.connections()).toBe(0);
  });

  it("aborts the response when the container's server fails after its headers", async () => {
    container.handler = (req, res) => {
      res.writeHead(200);
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 20);
    };
    await expect(send("/containers/ct-1/half")).rejects.toThrow();
    await until(() => container.open === 0, "the request ended");
  });

  it("pipes an upgraded connection both ways", async () => {
    container.upgrade = (req, socket, head) => {
      expect(req.headers[WEB_RELAY_SECRET_HEADER]).toBeUndefined();
      expect(req.url).toBe("/echo?room=1");
      socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n");
      if (head.length > 0) socket.write(head);
      socket.pipe(socket);
    };
    const socket = await new Promise<Socket>((resolve, reject) => {
      const req = request(new URL("/containers/ct-1/echo?room=1", address.url), {
        agent: false,
        headers: { [WEB_RELAY_SECRET_HEADER]: address.secret, connection: "upgrade", upgrade: "echo" },
      });
      req.on("upgrade", (res, upgraded: Socket) => {
        expect(res.statusCode).toBe(101);
        resolve(upgraded);
      });
      req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on("error", reject);
      req.end();
    });
    expect(container.open).toBe(1);
    const echoed = new Promise<string>((resolve) => socket.once("data", (chunk: Buffer) => resolve(chunk.toString())));
    socket.write("ping");
    expect(await echoed).toBe("ping");
    socket.destroy();
    await until(() => container.open === 0, "the upgraded connection ended");
  });

  /** An upgrade request through the relay: the upgraded socket, or the answer that came instead. */
  const upgradeTo = (path: string) =>
    new Promise<{ socket: Socket } | Answer>((resolve, reject) => {
      const req = request(new URL(path, address.url), {
        agent: false,
        headers: { [WEB_RELAY_SECRET_HEADER]: address.secret, connection: "upgrade", upgrade: "echo" },
      });
      req.on("upgrade", (_res, socket: Socket) => resolve({ socket }));
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      });
      req.on("error", reject);
      req.end();
    });

  it("passes a container's chunked refusal of an upgrade back whole", async () => {
    container.upgrade = (_req, socket) => {
      socket.end(
        "HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n5\r\nno ws\r\n7\r\n, sorry\r\n0\r\n\r\n",
      );
    };
    const answer = await upgradeTo("/containers/ct-1/ws");
    expect(answer).toMatchObject({ status: 426, body: "no ws, sorry" });
    await until(() => container.open === 0, "the refused upgrade ended");
  });

  it("ends upgraded connections still open when it closes", async () => {
    container.upgrade = (_req, socket) => {
      socket.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: upgrade\r\n\r\n");
      socket.pipe(socket);
    };
    const upgraded = await upgradeTo("/containers/ct-1/ws");
    if (!("socket" in upgraded)) throw new Error(`no upgrade: ${upgraded.status}`);
    const ended = new Promise<void>((resolve) => upgraded.socket.once("close", () => resolve()));
    const started = Date.now();
    await relay.close();
    await ended;
    expect(Date.now() - started).toBeLessThan(1000);
    await until(() => container.open === 0, "the upgraded connection ended");
  });

  it("refuses an upgrade without the secret", async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(new URL("/containers/ct-1/echo", address.url), {
        agent: false,
        headers: { connection: "upgrade", upgrade: "echo" },
      });
      req.on("upgrade", () => reject(new Error("upgraded")));
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.end();
    });
    expect(status).toBe(401);
  });
});
