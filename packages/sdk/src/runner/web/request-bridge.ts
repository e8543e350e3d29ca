import type { IncomingMessage, ServerResponse } from "node:http";

/** Headers of one connection, not of the request: they do not cross into the Request. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection", "te"]);

/** What an upgrade request keeps: a handler tells a WebSocket handshake by them (`Upgrade: websocket`). */
const UPGRADE_HEADERS = new Set(["connection", "upgrade"]);

/**
 * A WHATWG Request for a node request: its URL from the Host header and the path, its headers, and its
 * body streamed as it arrives (the socket pauses while the handler does not read). An upgrade request
 * keeps its `Connection` and `Upgrade` headers.
 */
export function toRequest(message: IncomingMessage, signal: AbortSignal, upgrade = false): Request {
  const url = new URL(message.url ?? "/", `http://${message.headers.host ?? "localhost"}`);
  const headers = new Headers();
  const raw = message.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) || (upgrade && UPGRADE_HEADERS.has(name))) headers.append(raw[i]!, raw[i + 1]!);
  }
  const method = message.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    signal,
    ...(hasBody ? { body: bodyStream(message), duplex: "half" } : {}),
  } as RequestInit);
}

/** The request's body as a ReadableStream that reads from the socket only as fast as it is consumed. */
function bodyStream(message: IncomingMessage): ReadableStream<Uint8Array> {
  let settled = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      message.on("data", (chunk: Buffer) => {
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) message.pause();
      });
      message.on("end", () => {
        if (settled) return;
        settled = true;
        controller.close();
      });
      message.on("close", () => {
        if (settled || message.complete) return;
        settled = true;
        controller.error(new Error("the client closed the connection before the request's body ended"));
      });
    },
    pull() {
      message.resume();
    },
    // The handler wants no more of it (an endpoint refusing a large body): the rest is read and dropped,
    // so the connection stays usable. Closing it instead would reset it under the relay, which may still
    // be sending the body, and lose the answer or the next request on the connection.
    cancel() {
      settled = true;
      message.removeAllListeners("data");
      message.resume();
    },
  });
}

const PENDING = Symbol("pending");
type Read = Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>>;

/** A read that has not resolved by the next turn of the event loop is PENDING (and still goes on). */
function readNow(read: Promise<Read>): Promise<Read | typeof PENDING> {
  return Promise.race([read, new Promise<typeof PENDING>((resolve) => setImmediate(resolve, PENDING))]);
}

/**
 * Writes a Response to a node response: its status and headers, then its body chunk by chunk as the
 * handler produces it, waiting for the socket to drain (never buffering the whole). Headers go at once if
 * the first chunk is not ready (an event stream's client sees them before the first event); a body that is
 * whole at once goes with a Content-Length in one write. A client that goes away cancels the body.
 */
export async function writeResponse(res: ServerResponse, response: Response, head: boolean): Promise<void> {
  res.statusCode = response.status;
  // A body the handler left unread is read and dropped once the answer is sent, so the connection stays usable.
  res.once("finish", () => {
    if (res.req.complete) return;
    res.req.removeAllListeners("data");
    res.req.resume();
  });
  if (response.statusText) res.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") res.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) res.setHeader("set-cookie", cookies);
  if (!response.body || head) {
    await response.body?.cancel();
    res.end();
    return;
  }
  const reader = response.body.getReader();
  res.once("close", () => {
    if (!res.writableFinished) reader.cancel().catch(() => {});
  });
  let read = reader.read();
  let first = await readNow(read);
  if (first === PENDING) {
    res.flushHeaders();
    first = await read;
  }
  if (first.done) {
    res.end();
    return;
  }
  read = reader.read();
  const second = await readNow(read);
  if (second !== PENDING && second.done && !res.headersSent) {
    if (!res.hasHeader("content-length")) res.setHeader("content-length", first.value.byteLength);
    res.end(first.value);
    return;
  }
  // One read ahead of the socket: the next chunk is being made while this one is written.
  let chunk = first.value;
  for (;;) {
    if (!res.write(chunk)) await drained(res);
    if (res.destroyed) return;
    const result = await read;
    if (result.done) break;
    chunk = result.value;
    read = reader.read();
  }
  res.end();
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
