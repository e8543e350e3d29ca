import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ClientMessageInput, GeneratorItem, LogLine, Result, ServerToClient } from "@skiff/protocol";
import { MAX_FRAME_BYTES, PROTOCOL_VERSION } from "@skiff/protocol/constants";
import { decodeMessage, encodeMessage, failurePayload } from "@skiff/protocol/frame";
import { groupBy } from "@skiff/protocol/group-by";
import {
  type JsonRoute,
  type LinesRoute,
  pathOf,
  type Route,
  type RouteInput,
  type RouteResponse,
} from "@skiff/protocol/http/route";
import { SeenLines } from "@skiff/protocol/seen-lines";
import WebSocket from "ws";
import { SkiffError } from "./errors.js";

type Request = ClientMessageInput extends infer M ? (M extends { rid: number } ? Omit<M, "rid"> : never) : never;

/** Output or the end of a shell. */
export type ShellEvent = Extract<ServerToClient, { t: "shell-output" | "shell-exit" }>;

interface Pending {
  message: Request;
  /** Went out on a connection at least once: after a reconnect it goes again as a resend. */
  sent: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
}

export interface ClientOptions {
  serverUrl: string;
  token?: string;
  /** Give up on an unreachable server after this long (ms). */
  reconnectForMs?: number;
  /** Says which client this is ("cli", "sdk"): the server writes it beside the token in a volume's history. */
  agent?: string;
}

/**
 * Talks to a Skiff server: JSON over HTTP for control calls, one WebSocket for calls and results.
 * The socket reconnects by itself and resends what was not acknowledged; every request is idempotent.
 */
export class Client {
  private socket: WebSocket | undefined;
  private opening: Promise<WebSocket> | undefined;
  private nextRid = 1;
  private readonly shellHandlers = new Map<string, (message: ShellEvent) => void>();
  private readonly pending = new Map<number, Pending>();
  private readonly resultHandlers = new Map<string, Set<(results: Result[]) => void>>();
  private readonly itemHandlers = new Map<string, (items: GeneratorItem[]) => void>();
  private readonly logHandlers = new Map<string, Set<LogWatcher>>();
  /** Log lines had, by container and number: lines replayed after a reconnect are dropped. */
  private readonly logSeen = new SeenLines();
  private closed = false;
  private unreachableSince: number | undefined;

  constructor(readonly options: ClientOptions) {}

  // ---- HTTP ----

  /**
   * Calls a JSON route of the API (see protocol's http routes) with its path parameters, query and body;
   * answers the server's reply as the route's response schema reads it. A refusal throws the server's
   * error (its code and message).
   * @example
   * const { apps } = await client.call(appRoutes.list, { query: { env: "main" } });
   */
  async call<R extends JsonRoute>(route: R, ...[input]: Optional<RouteInput<R>>): Promise<RouteResponse<R>> {
    const { path, response } = await this.sendCall(route, input);
    if (!response.ok) throw await refusal(response, `${route.method} ${path}`);
    return this.checked(route, path, await response.text());
  }

  /** A JSON answer as the route's response schema reads it. */
  private checked<R extends JsonRoute>(route: R, path: string, text: string): RouteResponse<R> {
    const parsed = route.response.safeParse(text ? JSON.parse(text) : {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new SkiffError(
        "INTERNAL",
        `the server's answer to ${route.method} ${path} is not what this client expects (${issue.path.join(".") || "answer"}: ${issue.message}): use a client of the server's version`,
      );
    }
    return parsed.data;
  }

  /**
   * Calls a route whose answer streams as text lines (an image build): each line goes to `onLine` as it
   * arrives. A refusal before the stream starts throws like `call`.
   */
  async callLines<R extends LinesRoute>(route: R, input: RouteInput<R>, onLine: (line: string) => void): Promise<void> {
    const { path, response } = await this.sendCall(route, input);
    if (!response.ok || !response.body) throw await refusal(response, `${route.method} ${path}`);
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) onLine(line);
    }
    if (rest) onLine(rest);
  }

  /**
   * Calls a route that takes a raw body (a volume file's bytes): `body` streams as it is read, never held
   * whole; its JSON answer is checked like `call`'s. `size`, when known, goes as Content-Length.
   */
  async callWithBytes<R extends JsonRoute>(
    route: R,
    input: RouteInput<R>,
    body: Uint8Array | AsyncIterable<Uint8Array>,
    size?: number,
  ): Promise<RouteResponse<R>> {
    const path = pathOf(route, input as CallParts);
    const length = body instanceof Uint8Array ? body.length : size;
    const headers: Record<string, string> = {
      ...this.authHeaders(),
      "content-type": "application/octet-stream",
      ...(length === undefined ? {} : { "content-length": String(length) }),
    };
    let response: IncomingMessage;
    try {
      response = await httpRequest(this.options.serverUrl, path, route.method, headers, body);
    } catch (cause) {
      throw this.unreachable(cause);
    }
    const text = await readText(response);
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) throw refusalOf(text, status, `${route.method} ${path}`);
    return this.checked(route, path, text);
  }

  /**
   * Calls a route that answers raw bytes (a volume file): resolves once the answer starts, with its status,
   * headers and body unread (a Node stream). A refusal throws like `call`'s.
   */
  async callForBytes<R extends Route>(
    route: R,
    input: RouteInput<R>,
    headers: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    const path = pathOf(route, input as CallParts);
    let response: IncomingMessage;
    try {
      response = await httpRequest(this.options.serverUrl, path, route.method, { ...this.authHeaders(), ...headers });
    } catch (cause) {
      throw this.unreachable(cause);
    }
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) throw refusalOf(await readText(response), status, `${route.method} ${path}`);
    return response;
  }

  /** Sends a call of `route`, its body as JSON; answers the path it went to and the response, unread. */
  private async sendCall(route: JsonRoute | LinesRoute, input: unknown): Promise<{ path: string; response: Response }> {
    const parts = (input ?? {}) as CallParts;
    const path = pathOf(route, parts);
    const response = await this.fetch(path, {
      method: route.method,
      headers: { "content-type": "application/json" },
      ...(parts.body === undefined ? {} : { body: JSON.stringify(parts.body) }),
    });
    return { path, response };
  }

  /** Whether the server holds a blob that this client's token may read. */
  async hasBlob(hash: string): Promise<boolean> {
    return (await this.fetch(`/v1/blobs/${hash}`, { method: "HEAD" })).ok;
  }

  /** Uploads bytes as a blob (once: the server already holding them is asked first); returns their sha256. */
  async putBlob(bytes: Uint8Array): Promise<string> {
    const hash = createHash("sha256").update(bytes).digest("hex");
    if (await this.hasBlob(hash)) return hash;
    const response = await this.transfer("PUT", `/v1/blobs/${hash}`, bytes);
    const status = response.statusCode ?? 0;
    const text = await readText(response);
    if (status < 200 || status >= 300) throw refusalOf(text, status, `uploading blob ${hash}`);
    return hash;
  }

  /** A blob's bytes, read into one buffer of the size the server declares (no copy per piece). */
  async getBlob(hash: string): Promise<Uint8Array> {
    const response = await this.transfer("GET", `/v1/blobs/${hash}`);
    const status = response.statusCode ?? 0;
    if (status === 404) {
      response.resume();
      throw new SkiffError("NOT_FOUND", `blob ${hash} is not on the server`);
    }
    if (status !== 200) throw refusalOf(await readText(response), status, `fetching blob ${hash}`);
    const size = Number(response.headers["content-length"]);
    if (!Number.isSafeInteger(size)) {
      response.resume();
      throw new SkiffError("INTERNAL", `the server sent blob ${hash} without its size`);
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for await (const chunk of response as AsyncIterable<Buffer>) {
      if (at + chunk.length > size) throw new SkiffError("INTERNAL", `blob ${hash} is longer than the server said`);
      bytes.set(chunk, at);
      at += chunk.length;
    }
    if (at !== size) throw new SkiffError("UNAVAILABLE", `blob ${hash} was cut short at ${at} of ${size} bytes`);
    return bytes;
  }

  /**
   * A blob's request over node:http(s), its answer unread: global fetch sends a large body in small copied
   * pieces, several times slower than the socket allows.
   */
  private async transfer(method: "GET" | "PUT", path: string, body?: Uint8Array): Promise<IncomingMessage> {
    const headers: Record<string, string> = {
      ...this.authHeaders(),
      ...(body ? { "content-type": "application/octet-stream", "content-length": String(body.length) } : {}),
    };
    try {
      return await httpRequest(this.options.serverUrl, path, method, headers, body);
    } catch (cause) {
      throw this.unreachable(cause);
    }
  }

  /** Every HTTP call: authenticated, and an unreachable server is reported as such, with what to do. */
  private async fetch(path: string, init: RequestInit): Promise<Response> {
    const withAuth = {
      ...init,
      headers: { ...(init.headers as Record<string, string> | undefined), ...this.authHeaders() },
    };
    try {
      if (unixSocketOf(this.options.serverUrl))
        return await fetchOverUnixSocket(this.options.serverUrl, path, withAuth);
      return await fetch(new URL(path, this.options.serverUrl), withAuth);
    } catch (cause) {
      throw this.unreachable(cause);
    }
  }

  // ---- WebSocket ----

  /** Sends a request and resolves once the server has acknowledged it (durably, for submits). */
  send(message: Request): Promise<void> {
    const rid = this.nextRid++;
    return new Promise<void>((resolve, reject) => {
      const pending: Pending = { message, resolve, reject, sent: false };
      this.pending.set(rid, pending);
      if (this.socket?.readyState === WebSocket.OPEN) {
        this.socket.send(encodeMessage({ ...message, rid }));
        pending.sent = true;
      }
      // Otherwise the connection sends everything pending once it opens; failures are retried by reconnect.
      else this.connect().catch(() => {});
    });
  }

  /** Receives the results of a call as they finish (and those already finished). Returns an unsubscribe. */
  onResults(callId: string, handler: (results: Result[]) => void): () => void {
    const handlers = this.resultHandlers.get(callId) ?? new Set<(results: Result[]) => void>();
    this.resultHandlers.set(callId, handlers);
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size > 0 || this.resultHandlers.get(callId) !== handlers) return;
      this.resultHandlers.delete(callId);
      // The server would otherwise keep pushing (and remembering) this call for the connection's life.
      if (!this.closed) this.send({ t: "unsubscribe", callId }).catch(() => {});
    };
  }

  /**
   * Receives the values a generator call yields, as the server pushes them (never replayed: see
   * GeneratorStream). Its result comes through `onResults`. Returns a function that stops it.
   */
  onItems(callId: string, handler: (items: GeneratorItem[]) => void): () => void {
    this.itemHandlers.set(callId, handler);
    return () => {
      if (this.itemHandlers.get(callId) === handler) this.itemHandlers.delete(callId);
    };
  }

  /** Receives a shell's output and exit (see `skiff shell`). Returns a function that stops it. */
  onShell(sid: string, handler: (message: ShellEvent) => void): () => void {
    this.shellHandlers.set(sid, handler);
    return () => this.shellHandlers.delete(sid);
  }

  /**
   * Streams an app's logs live; `onEnd` runs once the app is stopped and every line of its containers has
   * come.
   */
  async streamLogs(appId: string, onLines: (lines: LogLine[]) => void, onEnd?: () => void): Promise<() => void> {
    const watchers = this.logHandlers.get(appId) ?? new Set<LogWatcher>();
    this.logHandlers.set(appId, watchers);
    const watcher: LogWatcher = { onLines, ...(onEnd ? { onEnd } : {}) };
    watchers.add(watcher);
    await this.send({ t: "logs", appId });
    return () => watchers.delete(watcher);
  }

  /**
   * Closes at once, without the WebSocket's closing handshake, and resolves once the connection is gone: the
   * runner does this before a memory snapshot, which an open connection would make fail.
   */
  async disconnect(): Promise<void> {
    const socket = this.socket;
    this.close();
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    const gone = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    socket.terminate();
    await gone;
  }

  close(): void {
    this.closed = true;
    this.socket?.close();
    for (const pending of this.pending.values()) pending.reject(new SkiffError("CANCELLED", "the client was closed"));
    this.pending.clear();
  }

  private authHeaders(): Record<string, string> {
    return {
      ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
      ...(this.options.agent ? { "x-skiff-client": this.options.agent } : {}),
    };
  }

  private unreachable(cause: unknown): SkiffError {
    return new SkiffError(
      "UNAVAILABLE",
      `the Skiff server at ${this.options.serverUrl} is not reachable: start it with \`skiff up\`, or set SKIFF_SERVER_URL`,
      { cause },
    );
  }

  private connect(): Promise<WebSocket> {
    if (this.socket?.readyState === WebSocket.OPEN) return Promise.resolve(this.socket);
    if (this.opening) return this.opening;
    const socketPath = unixSocketOf(this.options.serverUrl);
    const path = `/v1/client?v=${PROTOCOL_VERSION}`;
    const url = socketPath ? `ws+unix://${socketPath}:${path}` : new URL(path, this.options.serverUrl);
    if (url instanceof URL) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.opening = new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(url, {
        headers: this.authHeaders(),
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
      });
      socket.binaryType = "nodebuffer";
      socket.once("open", () => {
        this.socket = socket;
        this.opening = undefined;
        this.unreachableSince = undefined;
        // Everything unacknowledged goes again: submits are deduplicated by (callId, idx).
        for (const [rid, pending] of this.pending) {
          const resent = pending.sent && pending.message.t === "submit";
          socket.send(encodeMessage({ ...pending.message, rid, ...(resent ? { resent } : {}) }));
          pending.sent = true;
        }
        resolve(socket);
      });
      socket.on("message", (data: Buffer) => this.receive(data));
      // A refused token: trying again would not help, so everything waiting fails with the server's word.
      socket.once("unexpected-response", (_request, response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => {
          const refused = refusalOf(Buffer.concat(chunks).toString(), response.statusCode ?? 0);
          this.opening = undefined;
          socket.terminate();
          if (refused.code === "UNAUTHORIZED" || refused.code === "FORBIDDEN") this.failEverything(refused);
          reject(refused);
        });
      });
      socket.once("close", (code: number, reason: Buffer) => {
        if (this.socket === socket) this.socket = undefined;
        this.opening = undefined;
        if (code === 4401)
          this.failEverything(new SkiffError("UNAUTHORIZED", `the server closed the connection: ${reason}`));
        else if (!this.closed && this.pending.size + this.resultHandlers.size + this.logHandlers.size > 0)
          this.reconnectLater();
      });
      socket.once("error", (error) => {
        this.opening = undefined;
        reject(error);
      });
    });
    return this.opening;
  }

  /** Fails every request and call this client waits on: the server cannot be reached, or refuses us. */
  private failEverything(error: SkiffError): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
    for (const [callId, handlers] of this.resultHandlers) {
      for (const handler of handlers)
        handler([{ idx: -1, status: "failure", code: error.code, data: { inline: failurePayload(error.message) } }]);
      this.resultHandlers.delete(callId);
    }
  }

  private reconnectLater(): void {
    this.unreachableSince ??= Date.now();
    if (Date.now() - this.unreachableSince > (this.options.reconnectForMs ?? 60_000)) {
      this.failEverything(this.unreachable(undefined));
      return;
    }
    setTimeout(() => {
      if (this.closed) return;
      this.connect()
        .then((socket) => {
          // Logs first, so that lines the server kept while we were away come before the results after them.
          for (const appId of this.logHandlers.keys())
            socket.send(encodeMessage({ t: "logs", rid: this.nextRid++, appId, resume: true }));
          // Results that finished while we were away are replayed by the server; handlers dedupe by idx.
          for (const callId of this.resultHandlers.keys()) {
            socket.send(encodeMessage({ t: "subscribe", rid: this.nextRid++, callId, fromIdx: 0 }));
          }
        })
        .catch(() => this.reconnectLater());
      // Not unref'd: it is only armed while calls are outstanding, and those must keep the process alive.
    }, 250);
  }

  private receive(data: Buffer): void {
    // Our own server's frames; a shape check instead of zod keeps the user's bundle small.
    const message = decodeMessage(data) as ServerToClient;
    if (typeof message !== "object" || message === null || typeof message.t !== "string") return;
    switch (message.t) {
      case "ack": {
        const pending = this.pending.get(message.rid);
        if (!pending) return;
        this.pending.delete(message.rid);
        if (message.error) pending.reject(new SkiffError(message.error.code, message.error.message));
        else pending.resolve();
        return;
      }
      case "shell-output":
      case "shell-exit":
        this.shellHandlers.get(message.sid)?.(message);
        return;
      case "results":
        for (const handler of this.resultHandlers.get(message.callId) ?? []) handler(message.results);
        return;
      case "items":
        this.itemHandlers.get(message.callId)?.(message.items);
        return;
      case "logs": {
        for (const [appId, lines] of groupBy(this.logSeen.fresh(message.lines), (line) => line.appId)) {
          for (const watcher of this.logHandlers.get(appId) ?? []) watcher.onLines(lines);
        }
        return;
      }
      case "logs-end":
        for (const watcher of this.logHandlers.get(message.appId) ?? []) watcher.onEnd?.();
        return;
    }
  }
}

/** A call's input may be left out when nothing in it is required. */
type Optional<Input> = Record<string, never> extends Input ? [input?: Input] : [input: Input];

/** A call's input, whatever its route. */
interface CallParts {
  params?: Record<string, string>;
  query?: Record<string, string | undefined>;
  body?: unknown;
}

/** Someone watching an app's logs (see Client.streamLogs). */
interface LogWatcher {
  onLines: (lines: LogLine[]) => void;
  onEnd?: () => void;
}

/**
 * The socket of a `unix:/path` server URL (inside a container, the worker relays the API on one), or
 * undefined for an http(s) URL.
 */
function unixSocketOf(serverUrl: string): string | undefined {
  return serverUrl.startsWith("unix:") ? serverUrl.slice("unix:".length) : undefined;
}

/** `fetch` for a server behind a Unix socket (global fetch speaks TCP only). */
async function fetchOverUnixSocket(serverUrl: string, path: string, init: RequestInit): Promise<Response> {
  const method = init.method ?? "GET";
  const body = init.body as string | Uint8Array | undefined;
  const res = await httpRequest(serverUrl, path, method, init.headers as Record<string, string>, body);
  const headers = new Headers();
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const status = res.statusCode ?? 500;
  const empty = method === "HEAD" || status === 204 || status === 304;
  if (empty) res.resume();
  const stream = empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
  return new Response(stream, { status, headers });
}

/** One request over node:http(s), to a server URL or a `unix:` socket; resolves with its answer, unread. */
async function httpRequest(
  serverUrl: string,
  path: string,
  method: string,
  headers: Record<string, string>,
  body?: string | Uint8Array | AsyncIterable<Uint8Array>,
): Promise<IncomingMessage> {
  const socketPath = unixSocketOf(serverUrl);
  const url = new URL(path, socketPath ? "http://localhost" : serverUrl);
  const { request } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  const target = socketPath
    ? { socketPath, path }
    : { protocol: url.protocol, hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port, path };
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = request({ ...target, method, headers }, resolve);
    req.on("error", reject);
    if (body === undefined || typeof body === "string" || body instanceof Uint8Array) req.end(body);
    // A stream goes as it is read, with backpressure; an answer that comes early (a refusal) still resolves.
    else pipeline(Readable.from(body, { objectMode: false }), req).catch(reject);
  });
}

/** A response's body as text (an error's JSON). */
async function readText(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of response as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

/** The server's refusal of a request as an error: its code and message, or the status when it gave none. */
async function refusal(response: Response, what: string): Promise<SkiffError> {
  return refusalOf(await response.text().catch(() => ""), response.status, what);
}

/** The API's `{ error: { code, message } }` body as an error (or a plain one naming the status). */
function refusalOf(body: string, status: number, what = "the server"): SkiffError {
  let json: { error?: { code: SkiffError["code"]; message: string } } = {};
  try {
    json = JSON.parse(body) as typeof json;
  } catch {}
  return new SkiffError(json.error?.code ?? "INTERNAL", json.error?.message ?? `${what} answered ${status}`);
}
