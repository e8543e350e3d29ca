import { randomUUID } from "node:crypto";
import { rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";
import { toRequest, writeResponse } from "./request-bridge.js";
import { Slots } from "./slots.js";
import type { WebServing } from "./web-serving.js";

/** How a fetch handler is served on the container's web socket. */
export interface ServeFetchOptions {
  /** The Unix socket to listen on (the worker relays requests to it). */
  socketPath: string;
  fetch: (request: Request) => Response | Promise<Response>;
  /** Requests handled at once; more wait, in order, for a slot. */
  maxConcurrent: number;
  /** How long the handler may take to return its Response: past it the client gets 504. */
  timeoutMs: number;
}

/**
 * Serves HTTP/1.1 on a Unix socket with a fetch handler: each request becomes a WHATWG Request (body
 * streamed), and the handler's Response is written back as it streams. A handler that throws gets the
 * client a 500 naming the request id (the `x-skiff-request-id` header, or a new one) and its stack
 * goes to stderr with that id; the stack never goes to the client.
 */
export async function serveFetch(options: ServeFetchOptions): Promise<WebServing> {
  const slots = new Slots(options.maxConcurrent);
  let inFlight = 0;
  let closing: (() => void) | undefined;
  const handle = async (message: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    const requestId = header(message, REQUEST_ID_HEADER) ?? randomUUID();
    try {
      await slots.acquire();
      try {
        await answer(message, res, requestId);
      } finally {
        slots.release();
      }
    } catch (error) {
      console.error(`skiff: request ${requestId}: the response failed:`, error);
      res.destroy();
    } finally {
      inFlight--;
      if (closing && inFlight === 0) closing();
    }
  };
  const server = createServer(
    // A large upload may take long to arrive; the handler's own timeout bounds the wait for its answer. Idle
    // connections outlive the worker relay's (seconds), so it never sends on one this side is closing.
    { requestTimeout: 0, keepAliveTimeout: 65_000 },
    (message, res) => void handle(message, res),
  );
  await rm(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close();
        closing = () => {
          server.closeAllConnections();
          resolve();
        };
        if (inFlight === 0) closing();
      }),
  };

  async function answer(message: IncomingMessage, res: ServerResponse, requestId: string): Promise<void> {
    const controller = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    let response: Response;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HandlerTimeout()), options.timeoutMs);
      });
      response = await Promise.race([options.fetch(toRequest(message, controller.signal)), timeout]);
      if (!(response instanceof Response)) {
        throw new TypeError(`the handler returned ${typeof response} instead of a Response`);
      }
    } catch (error) {
      if (error instanceof HandlerTimeout) {
        controller.abort();
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
    await writeResponse(res, response, message.method === "HEAD");
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
