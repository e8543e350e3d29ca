import { randomUUID } from "node:crypto";
import { Agent, type ClientRequest, type IncomingMessage, request, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DEFAULT_REDIRECT_AFTER_MS,
  endToEndHeaders,
  HTTP_STATUS,
  type LocalWebRelay,
  REQUEST_ID_HEADER,
} from "@skiff/protocol";
import type { Store } from "@skiff/store";
import type { Logger } from "pino";
import type { ControlPlane } from "../engine/control-plane.js";
import type { FunctionInfo } from "../engine/state.js";
import { PoolBusy, type WebLease } from "../engine/systems/web.js";
import { ApiError, apiErrorOf } from "../errors.js";
import { answer, crashed, EarlyBytes, switchingHead } from "./gateway-answers.js";
import { relayHeaders } from "./proxy-headers.js";
import { ReplayableBody } from "./replayable-body.js";
import { type LongRequest, LongRequests, RESULT_PATH } from "./web-results.js";
import { hostOf, isGatewayPath, type Target, targetOf } from "./web-target.js";

/** How long a URL's function id is remembered, so that a request costs no store query. */
const ROUTE_MEMORY_MS = 1000;

const NO_ENDPOINT = "no web endpoint at this URL";
/** Methods a request may be sent twice with (a kept-alive connection reset before any answer). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS"]);
const ENDPOINT_UPGRADE =
  "an app.endpoint does not take WebSocket upgrades: serve WebSockets from an app.web handler (call upgradeWebSocket(request) from skiff) or an app.webServer";
const PROXY_AUTH =
  "this endpoint requires proxy auth: send a proxy token of its workspace as the Skiff-Key and Skiff-Secret headers (`skiff token create --proxy`)";

/** One request on its way through the gateway. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  info: FunctionInfo;
  target: Target;
  search: string;
  requestId: string;
  body: ReplayableBody;
  /** Cancels a wait (for a container) when the client goes away; made only for a request that waits. */
  gone: AbortController | undefined;
  /** The client's side closed: the exchange is over (but for a parked request's container). */
  closed: boolean;
  /** The container slot it holds, if any: freed when the exchange ends. */
  lease: WebLease | undefined;
  /** The request to the relay now, if any: cut when the client goes away. */
  upstream: ClientRequest | undefined;
  /** Fires when the request has run its function's `redirectAfter` without an answer. */
  redirect: NodeJS.Timeout | undefined;
  /** It ran past `redirectAfter` before it reached a container: it is redirected once it does. */
  overdue: boolean;
  /** It was answered 303: its answer goes to whoever comes to its result URL. */
  parked: boolean;
}

/**
 * The web gateway: `/w/ENV/APP/LABEL/REST` reaches the web function labelled LABEL of app APP in that
 * environment, through its worker's relay to a container, streaming both ways. Public URLs (no API token),
 * but for functions with `requiresProxyAuth`. It runs on Node's request and response directly: bodies of
 * any size stream with backpressure, and a response's chunks (SSE) go out as they come.
 */
export class WebGateway {
  private readonly routes = new Map<string, { functionId: string; at: number }>();
  private readonly agents = new Map<string, Agent>();
  /** Workers' relays in this process, by URL: their containers are reached directly. */
  private readonly locals = new Map<string, LocalWebRelay>();
  /** Kept-alive connections to the web sockets of local workers' containers, by container id. */
  private readonly direct = new Map<string, Agent>();
  private readonly long = new LongRequests();
  /** Upgraded connections, open or waiting: the HTTP server's close neither counts nor ends them. */
  private readonly upgrades = new Set<Duplex>();

  /**
   * `webDomain`: the base domain of host routing (`LABEL-APP.ENV.DOMAIN`), if the server has one; without
   * it only `/w/...` paths reach web functions.
   */
  constructor(private readonly deps: { store: Store; control: ControlPlane; log: Logger; webDomain?: string }) {}

  /** A worker's relay in this process (`skiff up`): requests to its containers skip the relay's HTTP hop. */
  attachLocal(relay: LocalWebRelay): void {
    this.locals.set(relay.url, relay);
    // A container that stops taking requests: its idle connections go now (its server waits for them to
    // close), and those in use when their answers end (see directAgent).
    relay.onStopping((containerId) => {
      const agent = this.direct.get(containerId);
      if (!agent) return;
      this.direct.delete(containerId);
      for (const sockets of Object.values(agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
    });
  }

  /** The kept-alive connections to a local container's web socket, kept only while it takes requests. */
  private directAgent(containerId: string, accepting: () => boolean): Agent {
    let agent = this.direct.get(containerId);
    if (!agent) {
      const made = new Agent({ keepAlive: true, scheduling: "lifo" });
      const keep = made.keepSocketAlive.bind(made);
      made.keepSocketAlive = (socket) => accepting() && keep(socket);
      agent = made;
      this.direct.set(containerId, agent);
    }
    return agent;
  }

  /** Whether a request is the gateway's: a `/w/...` path, or any path on a web function's host name. */
  owns(req: IncomingMessage): boolean {
    return isGatewayPath(req.url) || hostOf(req, this.deps.webDomain) !== undefined;
  }

  /** Answers one request whose path is the gateway's. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const requestId = randomUUID();
    res.setHeader(REQUEST_ID_HEADER, requestId);
    this.route(req, res, requestId).catch((error: Error) => {
      if (error instanceof ApiError && error.code === "CANCELLED") return;
      const refusal = apiErrorOf(error);
      if (refusal.code === "INTERNAL") this.deps.log.error({ err: error, requestId }, "web request failed");
      if (error instanceof PoolBusy) res.setHeader("retry-after", String(error.retryAfterS));
      answer(res, HTTP_STATUS[refusal.code], { error: { ...refusal.body().error, requestId } });
    });
  }

  /**
   * Answers one upgrade (a WebSocket) whose URL is the gateway's: resolved, authorized and given a container
   * slot as a request is, then sent to the container through its worker's relay (or straight to its web
   * socket when the worker is in this process). Once the container switches protocols (101), the two
   * connections are piped raw both ways, and the slot stays taken until either side closes; any other answer
   * goes back as it is. No resend on a relay's 503: an upgrade is not a request to replay, its client
   * reconnects.
   */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const requestId = randomUUID();
    socket.on("error", () => socket.destroy());
    this.upgrades.add(socket);
    socket.once("close", () => this.upgrades.delete(socket));
    // Answers before the switch (404, 401, 503, a container's refusal) are written as a response on the raw socket.
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    // Once a refusal is written the connection is done: destroyed, not half-closed, so its slot goes at once.
    res.once("finish", () => (socket as Socket).destroySoon());
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const early = new EarlyBytes(socket, head);
    this.routeUpgrade(req, res, socket, early, requestId).catch((error: Error) => {
      if (error instanceof ApiError && error.code === "CANCELLED") return;
      const refusal = apiErrorOf(error);
      if (refusal.code === "INTERNAL") this.deps.log.error({ err: error, requestId }, "web upgrade failed");
      if (error instanceof PoolBusy) res.setHeader("retry-after", String(error.retryAfterS));
      answer(res, HTTP_STATUS[refusal.code], { error: { ...refusal.body().error, requestId } });
    });
  }

  /** Lets go of the relays' kept-alive connections and cuts open WebSockets (the server is shutting down). */
  close(): void {
    this.long.close();
    for (const agent of this.direct.values()) agent.destroy();
    this.direct.clear();
    for (const socket of this.upgrades) socket.destroy();
    this.upgrades.clear();
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  /**
   * The running web function a request names, and the query its handler sees; 404 when there is none. With
   * `results`, a result URL whose answer is parked names the function that took that request, running or
   * not: a deploy since may have renamed it, relabelled it or left it out.
   */
  private async locate(
    req: IncomingMessage,
    results = false,
  ): Promise<{ target: Target; info: FunctionInfo; search: string; parked?: LongRequest | undefined }> {
    const raw = req.url ?? "/";
    const query = raw.indexOf("?");
    const target = targetOf(req, query < 0 ? raw : raw.slice(0, query), this.deps.webDomain);
    const result = results && target ? RESULT_PATH.exec(target.rest) : null;
    const parked = result ? this.long.find(result[1]!, (url) => target!.names(url)) : undefined;
    const info = parked?.info ?? (target && (await this.resolve(target)));
    if (!target || !info) throw new ApiError("NOT_FOUND", NO_ENDPOINT);
    return { target, info, search: query < 0 ? "" : raw.slice(query), parked };
  }

  private async route(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const started = performance.now();
    const { target, info, search, parked } = await this.locate(req, true);
    const exchange: Exchange = {
      req,
      res,
      info,
      target,
      search,
      requestId,
      body: new ReplayableBody(req, hasBody(req)),
      gone: undefined,
      closed: false,
      lease: undefined,
      upstream: undefined,
      redirect: undefined,
      overdue: false,
      parked: false,
    };
    res.once("close", () => {
      clearTimeout(exchange.redirect);
      // A redirected request goes on: its answer waits at its result URL.
      if (!exchange.parked) {
        exchange.closed = true;
        // Only a request still waiting needs telling (an abort costs an exception with its stack).
        if (!res.writableFinished) exchange.gone?.abort();
        exchange.lease?.release();
        if (!res.writableFinished) exchange.upstream?.destroy();
      }
      const ms = Math.round(performance.now() - started);
      // 499: the client went away before an answer started.
      const status = res.headersSent ? res.statusCode : 499;
      const line = `${req.method} ${target.rest}${exchange.search} ${status} ${ms}ms`;
      this.deps.control.web.logRequest(info, exchange.lease?.containerId ?? "ct-server", line);
    });
    // The client left during the lookup (its close came before the listener above): nothing to answer or hold.
    if (res.closed || req.socket.destroyed) {
      exchange.closed = true;
      return;
    }
    // A parked answer asks for what its request needed, whatever the URL's function asks now.
    const proxyAuth = parked ? parked.requiresProxyAuth : info.spec.web?.requiresProxyAuth;
    if (proxyAuth && !(await this.proxyAuthorized(req, info))) throw new ApiError("UNAUTHORIZED", PROXY_AUTH);
    const result = RESULT_PATH.exec(target.rest);
    if (result) {
      this.long.fetch(result[1]!, (url) => target.names(url), req, res);
      return;
    }
    const redirectAfterMs = redirectAfterOf(info);
    if (redirectAfterMs !== null) exchange.redirect = setTimeout(() => this.park(exchange), redirectAfterMs);
    const lease = await this.deps.control.web.acquire(info, { signal: () => waitSignal(exchange) });
    this.forward(exchange, lease, {});
  }

  /**
   * Answers a request that ran its `redirectAfter` 303 to its result URL, once it has reached a container
   * and its body is all in; the request goes on, and its answer waits for its client there.
   */
  private park(exchange: Exchange): void {
    const { req, res } = exchange;
    if (res.headersSent || exchange.closed || exchange.parked) return;
    if (!exchange.upstream) {
      exchange.overdue = true;
      return;
    }
    if (!req.complete) {
      req.once("end", () => this.park(exchange));
      return;
    }
    exchange.parked = true;
    const { info, target } = exchange;
    this.long.park(
      {
        requestId: exchange.requestId,
        info,
        url: target.address(info),
        requiresProxyAuth: info.spec.web?.requiresProxyAuth === true,
        redirectAfterMs: redirectAfterOf(info) ?? DEFAULT_REDIRECT_AFTER_MS,
        prefix: target.prefix,
        end: (delivered) => {
          exchange.closed = true;
          exchange.gone?.abort();
          exchange.lease?.release();
          // An answer nobody came for: the container need not go on (nor hold its connection).
          if (!delivered) exchange.upstream?.destroy();
        },
      },
      res,
    );
  }

  private async routeUpgrade(
    req: IncomingMessage,
    res: ServerResponse,
    client: Duplex,
    early: EarlyBytes,
    requestId: string,
  ): Promise<void> {
    const started = performance.now();
    const { target, info, search } = await this.locate(req);
    const gone = new AbortController();
    let lease: WebLease | undefined;
    let status = 499; // the client went away before an answer started
    let upstream: ClientRequest | undefined;
    let local: ReturnType<LocalWebRelay["open"]>;
    client.once("close", () => {
      gone.abort();
      upstream?.destroy();
      local?.done();
      lease?.release();
      const ms = Math.round(performance.now() - started);
      if (res.headersSent) status = res.statusCode;
      const line = `${req.method} ${target.rest}${search} ${status} ${ms}ms`;
      this.deps.control.web.logRequest(info, lease?.containerId ?? "ct-server", line);
    });
    // The client left during the lookup: nothing to answer or hold.
    if (client.destroyed) {
      gone.abort();
      return;
    }
    // Proxy auth first: a client without the token learns nothing of the function, what kind it is included.
    if (info.spec.web?.requiresProxyAuth && !(await this.proxyAuthorized(req, info)))
      throw new ApiError("UNAUTHORIZED", PROXY_AUTH);
    if (info.spec.web?.kind === "endpoint") throw new ApiError("BAD_REQUEST", ENDPOINT_UPGRADE);
    const granted = await this.deps.control.web.acquire(info, { signal: gone.signal });
    // The client left while the slot was being granted: nothing will release it but this.
    if (gone.signal.aborted) {
      granted.release();
      return;
    }
    lease = granted;
    const upgrade = { connection: "upgrade", ...(req.headers.upgrade ? { upgrade: req.headers.upgrade } : {}) };
    // A worker in this process: straight to the container's web socket, as for a request.
    local = this.locals.get(lease.relay.url)?.open(lease.containerId);
    upstream = this.upstreamRequest(req, `${target.rest}${search}`, requestId, target, lease, local, { upgrade });
    const containerId = lease.containerId;
    upstream.on("upgrade", (answer, relayed, relayedHead) => {
      status = answer.statusCode ?? 101;
      // From here on the connection is the two peers' own: no HTTP response of this side's may touch it.
      res.detachSocket(client as Socket);
      relayed.setNoDelay(true);
      (client as Socket).setNoDelay?.(true);
      client.write(switchingHead(answer, requestId));
      if (relayedHead.length > 0) client.write(relayedHead);
      for (const chunk of early.take()) relayed.write(chunk);
      const close = () => {
        relayed.destroy();
        client.destroy();
      };
      relayed.on("error", close).on("close", close);
      client.on("close", close);
      relayed.pipe(client).pipe(relayed);
    });
    upstream.on("response", (answer) => {
      // The container declined the upgrade (a 426, a 404, its own 401): its answer goes back as it is.
      res.writeHead(answer.statusCode ?? 502, endToEndHeaders(answer.headers));
      pipeline(answer, res).catch(() => res.destroy());
    });
    upstream.on("error", (error) => {
      if (client.destroyed) return;
      if (res.headersSent || !res.socket) {
        client.destroy();
        return;
      }
      this.deps.log.warn({ err: error, requestId, container: containerId }, "web upgrade failed in its relay");
      crashed(res, requestId);
    });
    upstream.end();
  }

  /** The running web function a URL names, remembered a second; undefined when there is none. */
  private async resolve(target: Target): Promise<FunctionInfo | undefined> {
    const remembered = this.routes.get(target.key);
    if (remembered && performance.now() - remembered.at < ROUTE_MEMORY_MS) {
      const info = await this.deps.control.web.find(remembered.functionId);
      if (info && target.matches(info)) return info;
    }
    this.routes.delete(target.key);
    const found = await target.lookup(this.deps.store);
    if (!found) return undefined;
    this.routes.set(target.key, { functionId: found.functionId, at: performance.now() });
    const info = await this.deps.control.web.find(found.functionId);
    return info && target.matches(info) ? info : undefined;
  }

  /** Whether the request carries a proxy token of the function's workspace. */
  private async proxyAuthorized(req: IncomingMessage, info: FunctionInfo): Promise<boolean> {
    const key = req.headers["skiff-key"];
    const secret = req.headers["skiff-secret"];
    if (typeof key !== "string" || typeof secret !== "string") return false;
    const principal = await this.deps.store.tokens.verify(`${key}:${secret}`);
    return principal?.kind === "proxy" && principal.workspace === info.workspace;
  }

  /**
   * Sends the request to the leased container through its worker's relay, and its answer back. A relay
   * that says the container is gone (503) before anything was answered gets the request sent once more,
   * to another container, if its body was kept; a relay or container failing before answering is a 502.
   * A GET or HEAD whose kept-alive connection was reset before any answer (the container, or the relay,
   * closed it just then) goes once more on a new connection, to the same container: if that one is gone,
   * the new connection is refused and the request goes elsewhere.
   */
  private forward(exchange: Exchange, lease: WebLease, tries: { elsewhere?: boolean; fresh?: boolean }): void {
    const { req, res, target, body, requestId } = exchange;
    // The client left while the slot was being granted: nothing will release it but this.
    if (exchange.closed) {
      lease.release();
      return;
    }
    exchange.lease = lease;
    // A worker in this process: straight to the container's web socket, without its relay's HTTP hop.
    const local = this.locals.get(lease.relay.url)?.open(lease.containerId);
    const upstream = this.upstreamRequest(req, `${target.rest}${exchange.search}`, requestId, target, lease, local, {
      fresh: tries.fresh,
    });
    if (local) upstream.once("close", local.done);
    exchange.upstream = upstream;
    if (exchange.overdue) setImmediate(() => this.park(exchange));
    let abandoned = false;
    // The container is gone (its relay says so, or nothing listens on its socket) before it answered: the
    // request goes once more, to another container, if its body was kept.
    const retryElsewhere = (): boolean => {
      if (tries.elsewhere || !body.replayable || res.headersSent) return false;
      abandoned = true;
      body.detach();
      upstream.destroy();
      lease.release();
      this.deps.control.web
        .acquire(exchange.info, { exclude: new Set([lease.containerId]), signal: () => waitSignal(exchange) })
        .then((next) => this.forward(exchange, next, { ...tries, elsewhere: true }))
        .catch((error: Error) => this.refuse(exchange, error));
      return true;
    };
    upstream.on("response", (answer) => {
      if (answer.statusCode === 503 && !local && retryElsewhere()) return;
      clearTimeout(exchange.redirect);
      if (exchange.parked) {
        this.long.arrived(requestId, (client, clientReq) => respond(client, clientReq, upstream, answer));
        return;
      }
      respond(res, req, upstream, answer);
    });
    upstream.on("error", (error) => {
      if (abandoned) return;
      const code = (error as NodeJS.ErrnoException).code;
      // As the relay does: a stopping container closed the kept-alive connection this request went out on.
      const reset = upstream.reusedSocket && (code === "ECONNRESET" || code === "EPIPE");
      const stopped = local && !local.accepting() && reset;
      if (local && (code === "ECONNREFUSED" || code === "ENOENT" || stopped) && retryElsewhere()) return;
      if (reset && !tries.fresh && IDEMPOTENT.has(req.method ?? "") && body.replayable && !res.headersSent) {
        abandoned = true;
        body.detach();
        upstream.destroy();
        this.forward(exchange, lease, { ...tries, fresh: true });
        return;
      }
      if (exchange.parked) {
        this.long.arrived(requestId, (client) => crashed(client, requestId));
        return;
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      this.deps.log.warn({ err: error, requestId, container: lease.containerId }, "web request failed in its relay");
      crashed(res, requestId);
    });
    body.sendTo(upstream);
  }

  /**
   * The request to the leased container: straight to its web socket when its worker is in this process
   * (`local`), else through the worker's relay, with the secret that proves it. An upgrade (`upgrade`
   * headers) gets a connection of its own; a request, a kept-alive one.
   */
  private upstreamRequest(
    req: IncomingMessage,
    path: string,
    requestId: string,
    target: Target,
    lease: WebLease,
    local: { socketPath: string; accepting(): boolean } | undefined,
    options: { upgrade?: Record<string, string>; fresh?: boolean | undefined } = {},
  ): ClientRequest {
    const { upgrade } = options;
    const own = upgrade !== undefined || options.fresh === true;
    const forwarded = { requestId, remoteAddress: req.socket.remoteAddress, prefix: target.prefix };
    const headers = relayHeaders(req.headers, local ? forwarded : { ...forwarded, secret: lease.relay.secret });
    if (upgrade) Object.assign(headers, upgrade);
    if (local) {
      const agent = own ? false : this.directAgent(lease.containerId, local.accepting);
      return request({ socketPath: local.socketPath, path, method: req.method, agent, headers });
    }
    const agent = own ? false : this.agentFor(lease.relay.url);
    return request(`${lease.relay.url}/containers/${lease.containerId}${path}`, { method: req.method, agent, headers });
  }

  /** Answers a request whose retry could not get another container. */
  private refuse(exchange: Exchange, error: Error): void {
    if (error instanceof ApiError && error.code === "CANCELLED") return;
    const refusal = apiErrorOf(error);
    const send = (res: ServerResponse) => {
      if (error instanceof PoolBusy) res.setHeader("retry-after", String(error.retryAfterS));
      answer(res, HTTP_STATUS[refusal.code], { error: { ...refusal.body().error, requestId: exchange.requestId } });
    };
    if (exchange.parked) this.long.arrived(exchange.requestId, send);
    else send(exchange.res);
  }

  /** One kept-alive connection pool per worker relay. */
  private agentFor(url: string): Agent {
    let agent = this.agents.get(url);
    if (!agent) {
      agent = new Agent({ keepAlive: true, scheduling: "lifo" });
      this.agents.set(url, agent);
    }
    return agent;
  }
}

/** The signal that cancels an exchange's wait for a container, made on first use (most requests never wait). */
function waitSignal(exchange: Exchange): AbortSignal {
  exchange.gone ??= new AbortController();
  if (exchange.closed) exchange.gone.abort();
  return exchange.gone.signal;
}

/** A function's `redirectAfter` in ms: null for never. */
function redirectAfterOf(info: FunctionInfo): number | null {
  const chosen = info.spec.web?.redirectAfterMs;
  return chosen === undefined ? DEFAULT_REDIRECT_AFTER_MS : chosen;
}

/** Sends a container's answer (from its relay) to a client, streaming, with its status and end-to-end headers. */
function respond(res: ServerResponse, req: IncomingMessage, upstream: ClientRequest, reply: IncomingMessage): void {
  // Answered before the body was all sent (a refusal): neither connection can carry another request.
  if (!req.complete) res.shouldKeepAlive = false;
  reply.once("end", () => {
    if (!upstream.writableFinished) upstream.destroy();
  });
  res.writeHead(reply.statusCode ?? 502, endToEndHeaders(reply.headers));
  // Headers go with the first chunk; a stream whose first chunk is not there yet gets them at once. A body
  // of known length (most answers) comes with its head: no need to watch for that.
  if (reply.headers["content-length"] === undefined) {
    const early = setImmediate(() => res.flushHeaders());
    const sent = () => clearImmediate(early);
    reply.once("data", sent).once("end", sent).once("error", sent);
  }
  // pipe, not stream.pipeline: pipeline makes and aborts a signal per call, an exception with its stack each.
  reply.pipe(res);
  reply.once("error", () => res.destroy());
  res.once("close", () => {
    if (!res.writableFinished) reply.destroy();
  });
}

/** Whether a request carries a body (HTTP/1.1: only with a Content-Length above 0 or a Transfer-Encoding). */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}
