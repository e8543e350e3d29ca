import type { WebSocket as WsSocket } from "ws";
import type {
  WebSocketCloseEvent,
  WebSocketLike,
  WebSocketListener,
  WebSocketListenerOptions,
  WebSocketMessageEvent,
} from "../../web/websocket.js";

type Listener<E extends Event> = ((event: E) => void) | null;

/** Node 20 has no global CloseEvent: this one has what the browser's has. */
class CloseEvent extends Event implements WebSocketCloseEvent {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly wasClean: boolean,
  ) {
    super("close");
  }
}

/** An `error` event that carries what went wrong, for a listener that wants to log it. */
class ErrorEvent extends Event {
  constructor(readonly error: Error) {
    super("error");
    this.message = error.message;
  }
  readonly message: string;
}

/**
 * The server's end of a WebSocket as a handler holds it, made before the handshake completes (so that
 * `upgradeWebSocket` can return it with the response) and wired to a `ws` socket once it does. Shaped like
 * the browser's WebSocket: a handler written for Deno or the browser's API runs unchanged.
 */
export class ServerWebSocket implements WebSocketLike {
  readonly CONNECTING = 0 as const;
  readonly OPEN = 1 as const;
  readonly CLOSING = 2 as const;
  readonly CLOSED = 3 as const;
  binaryType: "arraybuffer" | "blob" = "arraybuffer";
  private state: 0 | 1 | 2 | 3 = 0;
  private ws: WsSocket | undefined;
  /** A close asked for before the handshake completed: done as soon as it does. */
  private closeEarly: { code?: number; reason?: string } | undefined;
  /** Sends waiting for a Blob's bytes, so that messages go in the order they were sent. */
  private pending: Promise<void> | undefined;
  private handlers: {
    open: Listener<Event>;
    message: Listener<WebSocketMessageEvent>;
    close: Listener<WebSocketCloseEvent>;
    error: Listener<Event>;
  } = { open: null, message: null, close: null, error: null };

  private readonly listeners = new Map<string, { listener: WebSocketListener<never>; once: boolean }[]>();

  constructor(
    readonly url: string,
    readonly protocol: string,
  ) {}

  addEventListener(
    type: string,
    listener: WebSocketListener<never> | null,
    options?: boolean | WebSocketListenerOptions,
  ): void {
    if (!listener) return;
    const once = typeof options === "object" && options.once === true;
    const signal = typeof options === "object" ? options.signal : undefined;
    if (signal?.aborted) return;
    const list = this.listeners.get(type) ?? [];
    if (list.some((entry) => entry.listener === listener)) return;
    list.push({ listener: listener, once });
    this.listeners.set(type, list);
    signal?.addEventListener("abort", () => this.removeEventListener(type, listener), { once: true });
  }

  removeEventListener(type: string, listener: WebSocketListener<never> | null): void {
    const list = this.listeners.get(type);
    const at = list?.findIndex((entry) => entry.listener === listener) ?? -1;
    if (at >= 0) list!.splice(at, 1);
  }

  /**
   * Calls the listeners of `event.type`, then its `on...` handler. Unlike Node's EventTarget, a listener
   * that throws is logged and the others still run: it would otherwise be an uncaught exception that ends
   * the container, and every other request and socket in it.
   */
  dispatchEvent(event: Event): boolean {
    Object.defineProperty(event, "target", { value: this, configurable: true });
    Object.defineProperty(event, "currentTarget", { value: this, configurable: true });
    const handler = this.handlers[event.type as keyof typeof this.handlers] as Listener<Event>;
    for (const entry of [...(this.listeners.get(event.type) ?? [])]) {
      if (entry.once) this.removeEventListener(event.type, entry.listener);
      const { listener } = entry;
      this.call(event, () =>
        typeof listener === "function" ? listener.call(this, event as never) : listener.handleEvent(event as never),
      );
    }
    if (handler) this.call(event, () => handler.call(this, event));
    return !event.defaultPrevented;
  }

  get readyState(): 0 | 1 | 2 | 3 {
    return this.state;
  }

  get extensions(): string {
    return "";
  }

  get bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  get onopen(): Listener<Event> {
    return this.handlers.open;
  }
  set onopen(listener: Listener<Event>) {
    this.handlers.open = listener;
  }
  get onmessage(): Listener<WebSocketMessageEvent> {
    return this.handlers.message;
  }
  set onmessage(listener: Listener<WebSocketMessageEvent>) {
    this.handlers.message = listener;
  }
  get onclose(): Listener<WebSocketCloseEvent> {
    return this.handlers.close;
  }
  set onclose(listener: Listener<WebSocketCloseEvent>) {
    this.handlers.close = listener;
  }
  get onerror(): Listener<Event> {
    return this.handlers.error;
  }
  set onerror(listener: Listener<Event>) {
    this.handlers.error = listener;
  }

  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.state === 0) {
      throw new DOMException(
        "the WebSocket is not open yet: send from its `open` event (socket.onopen = () => socket.send(...))",
        "InvalidStateError",
      );
    }
    const ws = this.ws;
    if (this.state !== 1 || !ws) return;
    if (data instanceof Blob || this.pending) {
      const previous = this.pending ?? Promise.resolve();
      const sent = previous
        .then(async () => {
          const bytes = data instanceof Blob ? Buffer.from(await data.arrayBuffer()) : data;
          if (this.state === 1) ws.send(bytes, { binary: typeof bytes !== "string" });
        })
        .catch((error: Error) => this.fail(error));
      this.pending = sent.then(() => {
        if (this.pending === sent) this.pending = undefined;
      });
      return;
    }
    ws.send(data as string | Buffer | ArrayBufferView, { binary: typeof data !== "string" });
  }

  close(code?: number, reason?: string): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new DOMException(`close code ${code} is not 1000 or 3000-4999`, "InvalidAccessError");
    }
    if (reason !== undefined && Buffer.byteLength(reason) > 123) {
      throw new DOMException("a close reason is at most 123 bytes of UTF-8", "SyntaxError");
    }
    if (this.state === 2 || this.state === 3) return;
    if (this.state === 0 || !this.ws) {
      this.state = 2;
      this.closeEarly = { ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
      return;
    }
    this.state = 2;
    this.ws.close(code, reason);
  }

  /** Closes with 1001 (going away), a code the handler itself may not send: the server is stopping. */
  goAway(reason: string): void {
    if (this.state === 2 || this.state === 3) return;
    this.state = 2;
    if (this.ws) this.ws.close(1001, reason);
    else this.closeEarly = { code: 1001, reason };
  }

  /** The handshake completed: from now on the socket is `ws`. */
  attach(ws: WsSocket): void {
    this.ws = ws;
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (this.state !== 1) return;
      let payload: string | ArrayBuffer | Blob;
      if (!isBinary) payload = data.toString("utf8");
      else if (this.binaryType === "blob") payload = new Blob([data]);
      else payload = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
      this.emit(new MessageEvent("message", { data: payload }) as WebSocketMessageEvent);
    });
    ws.on("error", (error: Error) => this.emit(new ErrorEvent(error)));
    ws.on("close", (code: number, reason: Buffer) => this.ended(code, reason.toString("utf8")));
    if (this.closeEarly) {
      ws.close(this.closeEarly.code, this.closeEarly.reason);
      return;
    }
    this.state = 1;
    this.emit(new Event("open"));
  }

  /** The handshake never completed (the client left, the handler returned another response): 1006. */
  abandon(why: string): void {
    if (this.state === 3) return;
    this.emit(new ErrorEvent(new Error(why)));
    this.ended(1006, "");
  }

  private fail(error: Error): void {
    this.emit(new ErrorEvent(error));
    this.ws?.terminate();
  }

  private ended(code: number, reason: string): void {
    if (this.state === 3) return;
    this.state = 3;
    this.emit(new CloseEvent(code, reason, code !== 1006));
  }

  private emit(event: Event): void {
    this.dispatchEvent(event);
  }

  private call(event: Event, run: () => unknown): void {
    try {
      const result = run();
      if (result instanceof Promise) {
        result.catch((error: unknown) => console.error(`skiff: a WebSocket ${event.type} listener failed:`, error));
      }
    } catch (error) {
      console.error(`skiff: a WebSocket ${event.type} listener threw:`, error);
    }
  }
}
