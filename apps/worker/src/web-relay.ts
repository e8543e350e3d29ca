import { randomBytes, timingSafeEqual } from "node:crypto";
import {
  Agent,
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  request,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { hostname } from "node:os";
import type { Duplex } from "node:stream";
import { type ErrorCode, endToEndHeaders, REQUEST_ID_HEADER, WEB_RELAY_SECRET_HEADER } from "@skiff/protocol";
import type { Logger } from "pino";

/** A container as the relay sees it: where its runner serves HTTP, and whether it takes requests now. */
export interface WebTarget {
  /** Ready and not stopping: a new request may go to it. */
  readonly acceptsRequests: boolean;
  /** The host path of the Unix socket its runner serves HTTP on; undefined for a function without `web`. */
  readonly webSocketPath: string | undefined;
  /** A request (or an upgraded connection) to it began; it counts as activity until `endRequest`. */
  beginRequest(): void;
  endRequest(): void;
}

/** Where the relay listens, and how it finds a container. */
export interface WebRelayOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: an ephemeral port. */
  port?: number;
  log: Logger;
  /** The container with this id, if this worker runs it. */
  target(containerId: string): WebTarget | undefined;
}

/** What the worker's hello tells the server: where to send web requests, and the secret that proves them. */
export interface WebRelayAddress {
  url: string;
  secret: string;
}

const ROUTE = /^\/containers\/([^/?]+)(\/[^?]*)?(\?.*)?$/;

/**
 * The worker's HTTP relay: the server's gateway sends a web request to `{url}/containers/ID/PATH?QUERY`
 * with the relay's secret, and the relay passes it to container ID's web socket as `/PATH?QUERY`, bodies
 * streamed both ways as they come (nothing is buffered whole; an SSE response flushes event by event).
 * WebSocket upgrades are piped as raw connections. The secret is made at start and known only to the
 * server, through the worker's hello.
 */
export class WebRelay {
  private readonly secret = randomBytes(32).toString("hex");
  private readonly server: Server;
  /** Keep-alive connections to each container's web socket, by container id. */
  private readonly agents = new Map<string, Agent>();
  /** Callers in this process told when a container stops taking requests (see `onStopping`). */
  private readonly stopping = new Set<(containerId: string) => void>();
  /** Upgraded connections from the server: `closeAllConnections` does not end them, and `close` waits for them. */
  private readonly upgrades = new Set<Duplex>();

  constructor(private readonly options: WebRelayOptions) {
    this.server = createServer({ noDelay: true }, (req, res) => this.relay(req, res));
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.relayUpgrade(req, socket, head),
    );
    this.server.on("clientError", (_error, socket) => socket.destroy());
  }

  /** Listens; resolves with what the hello carries. */
  async start(): Promise<WebRelayAddress> {
    const host = this.options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.options.port ?? 0, host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    const { port } = this.server.address() as AddressInfo;
    return { url: `http://${advertisedHost(host)}:${port}`, secret: this.secret };
  }

  /** Closes the listener and every connection, to clients and containers alike. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    for (const socket of this.upgrades) socket.destroy();
    this.upgrades.clear();
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    await closed;
  }

  /**
   * A container's web socket for a caller in this process (the server's gateway, when `skiff up` runs
   * server and worker together): the path to connect to, the request counted as activity until `done`.
   * Undefined when the container takes no requests now. It skips the relay's own HTTP hop.
   */
  open(containerId: string): { socketPath: string; done(): void; accepting(): boolean } | undefined {
    const target = this.options.target(containerId);
    const socketPath = target?.webSocketPath;
    if (!target?.acceptsRequests || !socketPath) return undefined;
    return { socketPath, accepting: () => target.acceptsRequests, done: lease(target) };
  }

  /**
   * A container stops taking requests: the connections kept alive to it go now, and those of requests in
   * flight once they are answered, so that its server can close (a web server on a port waits for every
   * connection before the container's `exit` hooks run).
   */
  drain(containerId: string): void {
    for (const listener of this.stopping) listener(containerId);
    const agent = this.agents.get(containerId);
    if (!agent) return;
    for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }

  /** Tells `listener` when a container stops taking requests or ends (a caller in this process, see `open`). */
  onStopping(listener: (containerId: string) => void): void {
    this.stopping.add(listener);
  }

  /** Drops the connections kept to a container that ended. */
  forget(containerId: string): void {
    for (const listener of this.stopping) listener(containerId);
    this.agents.get(containerId)?.destroy();
    this.agents.delete(containerId);
  }

  private relay(req: IncomingMessage, res: ServerResponse): void {
    const found = this.find(req);
    if ("error" in found) {
      req.resume();
      sendError(res, found.status, found.code, found.error, req);
      return;
    }
    const { containerId, target, socketPath, path } = found;
    const end = lease(target);
    const upstream = request({
      socketPath,
      agent: this.agentFor(containerId),
      method: req.method,
      path,
      headers: forwardedHeaders(req.headers, this.secret),
    });
    upstream.on("response", (answer) => {
      // Answered before the body was all sent (a refusal): the rest is read and dropped here, so that the
      // server's connection stays usable and never sees it reset while still sending.
      answer.once("end", () => {
        if (upstream.writableFinished) return;
        req.unpipe(upstream);
        upstream.destroy();
        req.resume();
      });
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, forwardedHeaders(answer.headers));
      // Headers go out now, not with the first body chunk: a client of a slow stream learns its status at once.
      res.flushHeaders();
      answer.pipe(res);
      answer.on("error", () => res.destroy());
    });
    upstream.on("error", (error) => {
      // After the client left (see below) there is nobody to answer.
      if (res.destroyed) return;
      if (res.headersSent) {
        res.destroy(error);
        return;
      }
      // Nothing listens on its socket any more (its process ended), or it is stopping and closed an idle
      // connection just as this request went out on it: the request never reached the handler, so the
      // server may send it to another container, as for one this relay no longer has.
      const code = (error as NodeJS.ErrnoException).code;
      const stoppedWhileSent =
        !target.acceptsRequests && upstream.reusedSocket && (code === "ECONNRESET" || code === "EPIPE");
      if (code === "ECONNREFUSED" || code === "ENOENT" || stoppedWhileSent) {
        sendError(res, 503, "UNAVAILABLE", `container ${containerId} is not serving requests now`, req);
        return;
      }
      this.options.log.warn({ err: error, container: containerId }, "a web request to a container failed");
      sendError(
        res,
        502,
        "CONTAINER_CRASHED",
        `the container failed while answering request ${requestIdOf(req) ?? "(no id)"}: try again (a new request gets a working container); its web server said: ${error.message}`,
        req,
      );
    });
    req.pipe(upstream);
    req.on("error", () => upstream.destroy());
    res.on("close", () => {
      end();
      // The client went away before the answer was whole: the container need not go on.
      if (!res.writableFinished) upstream.destroy();
    });
  }

  /** A WebSocket (or other) upgrade: once the container accepts it, the two connections are piped raw. */
  private relayUpgrade(req: IncomingMessage, client: Duplex, head: Buffer): void {
    client.on("error", () => client.destroy());
    this.upgrades.add(client);
    client.once("close", () => this.upgrades.delete(client));
    const found = this.find(req);
    if ("error" in found) {
      const body = JSON.stringify({ error: { code: found.code, message: found.error } });
      client.end(
        `HTTP/1.1 ${found.status} ${found.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const { target, socketPath, path } = found;
    const end = lease(target);
    client.on("close", end);
    const headers = forwardedHeaders(req.headers, this.secret);
    headers.connection = "upgrade";
    if (req.headers.upgrade) headers.upgrade = req.headers.upgrade;
    const upstream = request({ socketPath, agent: false, method: req.method, path, headers });
    // A client gone before the container answered: the container's half goes too.
    client.on("close", () => upstream.destroy());
    upstream.on("upgrade", (answer, socket, upstreamHead) => {
      client.write(responseHead(answer));
      if (upstreamHead.length > 0) client.write(upstreamHead);
      if (head.length > 0) socket.write(head);
      socket.pipe(client).pipe(socket);
      const close = () => {
        socket.destroy();
        client.destroy();
        end();
      };
      socket.on("error", close).on("close", close);
      client.on("close", close);
    });
    // The container declined the upgrade: its answer goes back as is, and the connection ends with it. Its
    // body is passed on decoded, so it is delimited by the connection's end rather than by chunks.
    upstream.on("response", (answer) => {
      client.write(responseHead(answer, { connection: "close" }, ["transfer-encoding"]));
      answer.pipe(client);
    });
    upstream.on("error", () => {
      client.destroy();
      end();
    });
    upstream.end();
  }

  private find(
    req: IncomingMessage,
  ):
    | { containerId: string; target: WebTarget; socketPath: string; path: string }
    | { status: number; code: ErrorCode; error: string } {
    if (!this.authorized(req.headers[WEB_RELAY_SECRET_HEADER]))
      return { status: 401, code: "UNAUTHORIZED", error: `the relay needs the worker's ${WEB_RELAY_SECRET_HEADER}` };
    const route = ROUTE.exec(req.url ?? "");
    if (!route) return { status: 404, code: "NOT_FOUND", error: "the relay serves /containers/ID/PATH only" };
    const containerId = decodeComponent(route[1]!);
    const target = containerId === undefined ? undefined : this.options.target(containerId);
    const socketPath = target?.webSocketPath;
    if (containerId === undefined || !target?.acceptsRequests || !socketPath) {
      return {
        status: 503,
        code: "UNAVAILABLE",
        error: `container ${route[1]} does not take web requests on this worker (unknown, not ready or stopping)`,
      };
    }
    return { containerId, target, socketPath, path: `${route[2] ?? "/"}${route[3] ?? ""}` };
  }

  /** Compares in constant time: how long a refusal takes says nothing about the secret. */
  private authorized(given: string | string[] | undefined): boolean {
    if (typeof given !== "string") return false;
    const expected = Buffer.from(this.secret);
    const actual = Buffer.from(given);
    return actual.length === expected.length && timingSafeEqual(actual, expected);
  }

  private agentFor(containerId: string): Agent {
    let agent = this.agents.get(containerId);
    if (!agent) {
      const kept = new Agent({ keepAlive: true });
      // A connection freed by a container that stops taking requests is closed rather than kept (see drain).
      const keep = kept.keepSocketAlive.bind(kept);
      kept.keepSocketAlive = (socket) => this.options.target(containerId)?.acceptsRequests === true && keep(socket);
      agent = kept;
      this.agents.set(containerId, agent);
    }
    return agent;
  }
}

/** The headers to pass on: all but hop-by-hop ones (and those the Connection header names) and the secret. */
function forwardedHeaders(headers: IncomingHttpHeaders, secret?: string): OutgoingHttpHeaders {
  return endToEndHeaders(headers, secret === undefined ? undefined : new Set([WEB_RELAY_SECRET_HEADER]));
}

/** An HTTP/1.1 response head, as written on a raw connection. */
function responseHead(answer: IncomingMessage, extra: Record<string, string> = {}, drop: string[] = []): string {
  const lines = [`HTTP/1.1 ${answer.statusCode} ${answer.statusMessage ?? ""}`];
  for (let i = 0; i < answer.rawHeaders.length; i += 2) {
    const name = answer.rawHeaders[i]!;
    if (name.toLowerCase() in extra || drop.includes(name.toLowerCase())) continue;
    lines.push(`${name}: ${answer.rawHeaders[i + 1]}`);
  }
  for (const [name, value] of Object.entries(extra)) lines.push(`${name}: ${value}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string, req: IncomingMessage): void {
  const requestId = requestIdOf(req);
  const body = JSON.stringify({ error: { code, message, ...(requestId ? { requestId } : {}) } });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function decodeComponent(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function requestIdOf(req: IncomingMessage): string | undefined {
  const id = req.headers[REQUEST_ID_HEADER];
  return typeof id === "string" ? id : undefined;
}

/** A wildcard address is no address to connect to: the server reaches this host by its name. */
function advertisedHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return hostname();
  return host.includes(":") ? `[${host}]` : host;
}

/** Counts a request as the container's activity: the function returned ends it, once however often called. */
function lease(target: WebTarget): () => void {
  target.beginRequest();
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    target.endRequest();
  };
}
