import { randomBytes } from "node:crypto";
import { type IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer } from "ws";
import { UPGRADE_WEBSOCKET, type UpgradeWebSocketOptions, type WebSocketUpgrade } from "../../web/websocket.js";
import { toRequest, writeResponse } from "./request-bridge.js";
import { ServerWebSocket } from "./server-websocket.js";

/**
 * Marks the response `upgradeWebSocket` returns, with a value made for its request. A header rather than the
 * Response object itself: a framework may copy the handler's Response (Hono does, to add headers) and the
 * header survives that. The runner removes it.
 */
const UPGRADE_MARKER = "x-skiff-websocket-upgrade";

const GOING_AWAY = "the container is stopping";

/** Headers of the handler's response that never go on a 101: ws writes its own, and there is no body. */
const NOT_ON_101 = new Set([
  UPGRADE_MARKER,
  "connection",
  "upgrade",
  "content-length",
  "content-type",
  "transfer-encoding",
  "keep-alive",
  "sec-websocket-accept",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
]);

/** What the runner calls a fetch handler with; it maps a throw or a timeout to a Response of its own. */
export type Respond = (request: Request, controller: AbortController) => Promise<Response>;

/**
 * WebSocket handshakes on the runner's HTTP server. The handler gets the handshake as a Request on which
 * `upgradeWebSocket` works; if it returns that call's response, the connection switches protocols (through
 * `ws`) and the handler's socket opens; any other response is written back as an HTTP answer, and the
 * connection closes after it.
 */
export class WebSocketUpgrades {
  private readonly wss: WebSocketServer;
  private readonly open = new Set<ServerWebSocket>();
  /** Set by `closeAll`: a handshake that completes after it is closed at once. */
  private closing = false;
  /** The subprotocol and extra headers (cookies...) the handler chose, by handshake. */
  private readonly chosen = new WeakMap<IncomingMessage, { protocol: string; headers: string[] }>();

  constructor(private readonly accepts: boolean) {
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (_offered, message) => this.chosen.get(message)?.protocol || false,
    });
    this.wss.on("headers", (headers, message) => headers.push(...(this.chosen.get(message)?.headers ?? [])));
  }

  /** Closes the open sockets with 1001, as a server that goes away does; their clients may reconnect. */
  closeAll(): void {
    this.closing = true;
    for (const socket of this.open) socket.goAway(GOING_AWAY);
  }

  /** Answers one upgrade request; resolves once it is over: the answer written, or the socket closed. */
  async answer(message: IncomingMessage, socket: Duplex, head: Buffer, respond: Respond): Promise<void> {
    const controller = new AbortController();
    socket.once("close", () => controller.abort());
    const request = toRequest(message, controller.signal, true);
    const handshake = this.accepts ? checkHandshake(message) : undefined;
    if (typeof handshake === "string") {
      const refusal = Response.json(
        { error: { code: "BAD_REQUEST", message: `not a valid WebSocket handshake: ${handshake}` } },
        { status: 400 },
      );
      return answerRaw(message, socket, refusal);
    }
    let upgrade: { socket: ServerWebSocket; mark: string; protocol: string } | undefined;
    if (handshake) {
      const accept = (options: UpgradeWebSocketOptions = {}): WebSocketUpgrade => {
        if (upgrade)
          throw new Error("upgradeWebSocket: called twice for one request: call it once, and return its response");
        const protocol = options.protocol && handshake.protocols.includes(options.protocol) ? options.protocol : "";
        upgrade = {
          socket: new ServerWebSocket(request.url.replace(/^http/, "ws"), protocol),
          mark: randomBytes(16).toString("hex"),
          protocol,
        };
        const response = new Response(null, { status: 200, headers: { [UPGRADE_MARKER]: upgrade.mark } });
        return { socket: upgrade.socket, response };
      };
      Object.defineProperty(request, UPGRADE_WEBSOCKET, { value: accept });
    }
    const response = await respond(request, controller);
    if (!upgrade) return answerRaw(message, socket, response);
    if (response.headers.get(UPGRADE_MARKER) !== upgrade.mark) {
      upgrade.socket.abandon(
        "the handler called upgradeWebSocket but returned another response: return the response upgradeWebSocket gave",
      );
      return answerRaw(message, socket, response);
    }
    if (socket.destroyed || !socket.writable) {
      upgrade.socket.abandon("the client left before the handshake completed");
      return;
    }
    const headers: string[] = [];
    for (const [name, value] of response.headers) if (!NOT_ON_101.has(name)) headers.push(`${name}: ${value}`);
    this.chosen.set(message, { protocol: upgrade.protocol, headers });
    const server = upgrade.socket;
    await new Promise<void>((resolve) => {
      let attached = false;
      // A handshake `ws` refuses after all, or a client gone meanwhile: the socket never opens.
      socket.once("close", () => {
        if (attached) return;
        server.abandon("the connection closed during the handshake");
        resolve();
      });
      this.wss.handleUpgrade(message, socket, head, (ws) => {
        attached = true;
        this.open.add(server);
        ws.once("close", () => {
          this.open.delete(server);
          resolve();
        });
        server.attach(ws);
        if (this.closing) server.goAway(GOING_AWAY);
      });
    });
  }
}

/**
 * A WebSocket handshake's subprotocols, or why the request is not a valid one (what `ws` would refuse);
 * undefined for a request that does not ask for a WebSocket at all.
 */
function checkHandshake(message: IncomingMessage): { protocols: string[] } | string | undefined {
  if (message.headers.upgrade?.toLowerCase() !== "websocket") return undefined;
  if (message.method !== "GET") return `the method is ${message.method}: a WebSocket handshake is a GET`;
  const key = message.headers["sec-websocket-key"];
  if (typeof key !== "string" || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return "Sec-WebSocket-Key is missing or invalid";
  const version = message.headers["sec-websocket-version"];
  if (version !== "13" && version !== "8") return "Sec-WebSocket-Version must be 13";
  const offered = message.headers["sec-websocket-protocol"];
  const protocols = (offered ?? "")
    .split(",")
    .map((protocol) => protocol.trim())
    .filter(Boolean);
  return { protocols };
}

/** Writes a Response as the HTTP answer to an upgrade request, and closes the connection after it. */
async function answerRaw(message: IncomingMessage, socket: Duplex, response: Response): Promise<void> {
  if (socket.destroyed) {
    await response.body?.cancel();
    return;
  }
  const res = new ServerResponse(message);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once("finish", () => socket.end());
  socket.on("error", () => socket.destroy());
  await writeResponse(res, response, message.method === "HEAD");
}
