import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";
import { Slots } from "./slots.js";
import { listenOnSocket, type WebServing } from "./web-serving.js";
import { WebSocketUpgrades } from "./websocket-upgrades.js";

/** How a fetch handler is served on the container's web socket. */
export interface ServeFetchOptions {
  /** The Unix socket to listen on (the worker relays requests to it). */
  socketPath: string;
  fetch: (request: Request) => Response | Promise<Response>;
  /** Requests handled at once; more wait, in order, for a slot. */
  maxConcurrent: number;
  /** How long the handler may take to return its Response: past it the client gets 504. */
  timeoutMs: number;
  /**
   * Whether the handler may accept WebSockets with `upgradeWebSocket` (app.web); without, a handshake is
   * a request like any other (app.endpoint).
   */
  websockets?: boolean;
}

/**
 * The platform's own Response class, taken before the request listener puts its lightweight one in its
 * place (which extends it): a handler may return either, or one `fetch` gave it.
 */
const PlatformResponse = globalThis.Response;

/**
 * Serves HTTP/1.1 on a Unix socket with a fetch handler: each request becomes a WHATWG Request (body
 * streamed), and the handler's Response is written back as it streams. Requests go through
 * `@hono/node-server`'s listener, which builds the Request only as far as the handler reads it and writes a
 * Response made from a string or bytes in one go: about a seventh of the CPU a full Request and a read of
 * the Response's stream cost per request. It makes the global Request and Response its lightweight
 * versions (subclasses of the platform's), in containers that serve a fetch handler only. A handler that throws gets the
 * client a 500 naming the request id (the `x-skiff-request-id` header, or a new one) and its stack
 * goes to stderr with that id; the stack never goes to the client. With `websockets`, a handler accepts a
 * WebSocket handshake with `upgradeWebSocket`; an open WebSocket holds its slot until it closes, and
 * `close` closes those still open with 1001.
 */
export async function serveFetch(options: ServeFetchOptions): Promise<WebServing> {
  const slots = new Slots(options.maxConcurrent);
  const upgrades = new WebSocketUpgrades(options.websockets === true);
  let inFlight = 0;
  let closing: (() => void) | undefined;
  /** Runs one exchange in a slot: a request until it is answered, a WebSocket until it closes. */
  const handle = async (message: IncomingMessage, exchange: (requestId: string) => Promise<void>, drop: () => void) => {
    inFlight++;
    const requestId = header(message, REQUEST_ID_HEADER) ?? randomUUID();
    try {
      await slots.acquire();
      try {
        await exchange(requestId);
      } finally {
        slots.release();
      }
    } catch (error) {
      console.error(`skiff: request ${requestId}: the response failed:`, error);
      drop();
    } finally {
      inFlight--;
      if (closing && inFlight === 0) closing();
    }
  };
  const requestIds = new WeakMap<object, string>();
  const listener = getRequestListener((request, { incoming }) =>
    respond(request, undefined, requestIds.get(incoming) ?? randomUUID()),
  );
  const server = createServer(
    // A large upload may take long to arrive; the handler's own timeout bounds the wait for its answer. Idle
    // connections outlive the worker relay's (seconds), so it never sends on one this side is closing.
    { requestTimeout: 0, keepAliveTimeout: 65_000 },
    (message, res) =>
      void handle(
        message,
        async (requestId) => {
          requestIds.set(message, requestId);
          await listener(message, res);
        },
        () => res.destroy(),
      ),
  );
  server.on("upgrade", (message: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    void handle(
      message,
      (requestId) =>
        upgrades.answer(message, socket, head, (request, controller) => respond(request, controller, requestId)),
      () => socket.destroy(),
    );
  });
  await listenOnSocket(server, options.socketPath);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close();
        upgrades.closeAll();
        closing = () => {
          server.closeAllConnections();
          resolve();
        };
        if (inFlight === 0) closing();
      }),
  };

  /**
   * The handler's Response, or the runner's own: 500 when it throws, 504 past its timeout (which aborts
   * `controller`, where the caller has one).
   */
  async function respond(
    request: Request,
    controller: AbortController | undefined,
    requestId: string,
  ): Promise<Response> {
    let response: Response;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HandlerTimeout()), options.timeoutMs);
      });
      response = await Promise.race([options.fetch(request), timeout]);
      if (!(response instanceof PlatformResponse)) {
        throw new TypeError(`the handler returned ${typeof response} instead of a Response`);
      }
      // A HEAD answer has no body: the handler's (maybe an endless stream) is not read.
      if (request.method === "HEAD" && response.body) {
        await response.body.cancel().catch(() => {});
        response = new Response(null, response);
      }
    } catch (error) {
      if (error instanceof HandlerTimeout) {
        controller?.abort();
        response = failure(
          504,
          "TIMEOUT",
          `the handler did not answer within ${options.timeoutMs / 1000} s`,
          requestId,
        );
      } else {
        console.error(`skiff: request ${requestId}: the handler failed:`, error);
        response = failure(500, "INTERNAL", "the handler failed", requestId);
      }
    } finally {
      clearTimeout(timer);
    }
    return response;
  }
}

class HandlerTimeout extends Error {}

function failure(status: number, code: string, message: string, requestId: string): Response {
  return Response.json(
    { error: { code, message, requestId } },
    { status, headers: { [REQUEST_ID_HEADER]: requestId } },
  );
}

function header(message: IncomingMessage, name: string): string | undefined {
  const value = message.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
