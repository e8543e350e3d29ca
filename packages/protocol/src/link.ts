import { decodeMessage, encodeMessage } from "./frame.js";

/**
 * One end of a worker–server connection: a WebSocket carrying CBOR frames, or, when the worker runs in
 * the server's process (`skiff up`), an in-process pair that hands messages over without encoding them.
 * Messages arrive in order, after the sender's current turn.
 */
export interface Link<Out, In> {
  readonly open: boolean;
  send(message: Out): void;
  close(code?: number, reason?: string): void;
  onMessage(handler: (message: In) => void): void;
  onClose(handler: (code: number, reason: string) => void): void;
}

/** The part of a `ws` WebSocket a link needs. */
export interface SocketLike {
  readonly readyState: number;
  readonly OPEN: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  on(event: "message", listener: (data: Buffer) => void): unknown;
  on(event: "close", listener: (code: number, reason: Buffer) => void): unknown;
}

/** A link over an open WebSocket; `parse` validates what arrives and returns undefined to drop it. */
export function socketLink<Out, In>(socket: SocketLike, parse: (message: unknown) => In | undefined): Link<Out, In> {
  return {
    get open() {
      return socket.readyState === socket.OPEN;
    },
    send(message) {
      if (socket.readyState === socket.OPEN) socket.send(encodeMessage(message));
    },
    close: (code, reason) => socket.close(code, reason),
    onMessage(handler) {
      socket.on("message", (data) => {
        const message = parse(decodeMessage(data));
        if (message !== undefined) handler(message);
      });
    },
    onClose(handler) {
      socket.on("close", (code, reason) => handler(code, reason.toString()));
    },
  };
}

class Side<Out, In> implements Link<Out, In> {
  peer!: Side<In, Out>;
  open = true;
  private readonly messageHandlers: ((message: In) => void)[] = [];
  private readonly closeHandlers: ((code: number, reason: string) => void)[] = [];
  private inbox: In[] = [];

  send(message: Out): void {
    if (!this.open) return;
    this.peer.receive(message);
  }

  close(code = 1000, reason = ""): void {
    if (!this.open) return;
    for (const side of [this, this.peer]) side.open = false;
    queueMicrotask(() => {
      for (const side of [this, this.peer]) for (const handler of side.closeHandlers) handler(code, reason);
    });
  }

  onMessage(handler: (message: In) => void): void {
    this.messageHandlers.push(handler);
  }

  onClose(handler: (code: number, reason: string) => void): void {
    this.closeHandlers.push(handler);
  }

  private receive(message: In): void {
    if (this.inbox.length === 0) queueMicrotask(() => this.deliver());
    this.inbox.push(message);
  }

  private deliver(): void {
    const messages = this.inbox;
    this.inbox = [];
    for (const message of messages) {
      if (!this.open) return;
      for (const handler of this.messageHandlers) handler(message);
    }
  }
}

/** Two connected in-process ends: what one sends, the other receives, as the same objects. */
export function linkPair<A, B>(): [Link<A, B>, Link<B, A>] {
  const a = new Side<A, B>();
  const b = new Side<B, A>();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
