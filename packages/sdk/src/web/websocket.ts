import { SkiffError } from "../errors.js";

/**
 * Where the runner puts, on the Request of a WebSocket handshake, the function that accepts it. Found by
 * `Symbol.for` name: the user's bundle and the runner carry different copies of the SDK.
 */
export const UPGRADE_WEBSOCKET = Symbol.for("skiff.web.upgradeWebSocket");

/** What `upgradeWebSocket` takes besides the request. */
export interface UpgradeWebSocketOptions {
  /**
   * The subprotocol to accept, if the client offered it (`Sec-WebSocket-Protocol`); none is accepted
   * otherwise.
   */
  protocol?: string;
}

/** An event a WebSocket dispatches when a message arrives: `data` is text, or binary as `binaryType` says. */
export interface WebSocketMessageEvent extends Event {
  readonly data: string | ArrayBuffer | Blob;
}

/** The event a WebSocket dispatches once it is closed: the close frame's code and reason. */
export interface WebSocketCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  /** False when the connection ended without a close handshake (code 1006). */
  readonly wasClean: boolean;
}

/** A listener of a WebSocketLike's events: a function, or an object with `handleEvent`. */
export type WebSocketListener<E extends Event = Event> = ((event: E) => void) | { handleEvent(event: E): void };

/** `once` drops the listener after its first call; `signal` drops it when aborted. */
export interface WebSocketListenerOptions {
  once?: boolean;
  signal?: AbortSignal;
}

/** The events of a WebSocketLike, by name. */
export interface WebSocketEventMap {
  open: Event;
  message: WebSocketMessageEvent;
  close: WebSocketCloseEvent;
  error: Event;
}

/**
 * The server's end of a WebSocket, shaped like the browser's `WebSocket`: `send`, `close`, `readyState`,
 * `binaryType` (`"arraybuffer"`, the default, or `"blob"`), `bufferedAmount`, and the `open`, `message`,
 * `close` and `error` events as listeners or `on...` properties.
 */
export interface WebSocketLike {
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
  /** 0 until the handshake completes, 1 while open, 2 while closing, 3 once closed. */
  readonly readyState: 0 | 1 | 2 | 3;
  /** The subprotocol accepted, or "". */
  readonly protocol: string;
  readonly extensions: string;
  /** The URL the client asked for, as the handler's Request had it. */
  readonly url: string;
  /** Bytes given to `send` and not yet written to the connection: watch it to keep a fast producer in check. */
  readonly bufferedAmount: number;
  binaryType: "arraybuffer" | "blob";
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: WebSocketMessageEvent) => void) | null;
  onclose: ((event: WebSocketCloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  /** Sends a text (string) or binary message. Throws before `open`, and does nothing once closing. */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;
  /** Starts the close handshake: `code` 1000 or 3000–4999, `reason` at most 123 bytes. */
  close(code?: number, reason?: string): void;
  addEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: WebSocketListener<WebSocketEventMap[K]> | null,
    options?: boolean | WebSocketListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: WebSocketListener | null,
    options?: boolean | WebSocketListenerOptions,
  ): void;
  removeEventListener<K extends keyof WebSocketEventMap>(
    type: K,
    listener: WebSocketListener<WebSocketEventMap[K]> | null,
  ): void;
  removeEventListener(type: string, listener: WebSocketListener | null): void;
  dispatchEvent(event: Event): boolean;
}

/** An accepted handshake: the socket, open once the client has `response`, which the handler must return. */
export interface WebSocketUpgrade {
  socket: WebSocketLike;
  response: Response;
}

/**
 * Accepts a WebSocket handshake in an `app.web` handler: return `response` from the handler, and talk to the
 * client on `socket` once it opens. A socket holds one of its container's request slots (`maxInputs`) while
 * it is open; the function's `timeout` bounds only the handler's return, not the socket's life.
 * Throws for a request that is not a WebSocket handshake: answer those as usual.
 * @example
 * import { upgradeWebSocket } from "skiff";
 * const chat = new Hono().get("/ws", (c) => {
 *   if (c.req.header("upgrade") !== "websocket") return c.text("a WebSocket lives here", 426);
 *   const { socket, response } = upgradeWebSocket(c.req.raw);
 *   socket.onmessage = (event) => socket.send(event.data);
 *   return response;
 * });
 * export const echo = app.web({ concurrent: { maxInputs: 100 } }, chat.fetch);
 */
export function upgradeWebSocket(request: Request, options: UpgradeWebSocketOptions = {}): WebSocketUpgrade {
  const accept = (request as unknown as Record<symbol, unknown>)[UPGRADE_WEBSOCKET];
  if (typeof accept === "function") return accept(options) as WebSocketUpgrade;
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new SkiffError(
      "BAD_REQUEST",
      "upgradeWebSocket: this request is not a WebSocket handshake (it has no `Upgrade: websocket` header): answer it with a normal Response, e.g. 426 Upgrade Required",
    );
  }
  throw new SkiffError(
    "BAD_REQUEST",
    "upgradeWebSocket: this Request did not come from Skiff's web runner: pass the Request the app.web handler was given (`c.req.raw` in Hono), not a copy; outside a container (`.local()`, tests) there is no connection to upgrade",
  );
}
