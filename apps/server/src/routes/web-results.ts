import type { IncomingMessage, ServerResponse } from "node:http";
import type { WebFunctionAddress } from "@skiff/protocol";
import type { FunctionInfo } from "../engine/state.js";
import { ApiError } from "../errors.js";

/** Where a redirected request's answer is fetched, under its function's URL: `.../__skiff/result/REQUEST_ID`. */
export const RESULT_PATH = /^\/__skiff\/result\/([0-9a-f-]{36})$/;

/** How long a redirected request waits for its client at its result URL before it is dropped. */
export const RESULT_KEEP_MS = 10 * 60_000;

const NO_RESULT =
  "no answer waits at this URL: an answer is fetched once, within 10 minutes of its last redirect; send the request again";

/** A request the gateway answered 303 while its container still works on it. */
export interface LongRequest {
  requestId: string;
  /** The function that took it: its logs get the result URL's lines, and its workspace's proxy tokens open it. */
  info: FunctionInfo;
  /**
   * The URL it was sent to, by name, and how that function answered requests then: its answer is fetched
   * there whatever deploys came since (one that renames the function gives it a new id, one that changes
   * its label or drops it leaves the URL to nobody), as no accepted request may be lost to a deploy.
   */
  url: WebFunctionAddress;
  requiresProxyAuth: boolean;
  /** How long a client at its result URL waits for the answer before it is sent there again. */
  redirectAfterMs: number;
  /** What the function's paths sit under on the client's side ("" on a host name). */
  prefix: string;
  /**
   * Lets go of what it holds (its container slot; its connection to the container unless its answer was
   * `delivered` whole, and any wait for a container).
   */
  end(delivered: boolean): void;
}

interface Parked {
  request: LongRequest;
  /** Sends the answer to a client, once it came (until then the container's answer is not read). */
  deliver: ((res: ServerResponse, req: IncomingMessage) => void) | undefined;
  /** The client waiting at the result URL now, if any. */
  waiter: (() => void) | undefined;
  expiry: NodeJS.Timeout | undefined;
}

/**
 * Long requests: one still unanswered after its function's `redirectAfter` (150 s by default) is answered
 * 303 to its result URL, as a proxy or browser that gives up on long requests would want. Its container
 * goes on; its answer is not read until the client comes to the result URL, so it costs no memory here
 * (backpressure holds it in the container). A client at the result URL waits up to `redirectAfter` again,
 * then is sent there once more. An answer is fetched once; one nobody comes for in RESULT_KEEP_MS is dropped.
 */
export class LongRequests {
  private readonly parked = new Map<string, Parked>();

  /** Answers the request 303 to its result URL; its answer waits there. */
  park(request: LongRequest, res: ServerResponse): void {
    const parked: Parked = { request, deliver: undefined, waiter: undefined, expiry: undefined };
    this.parked.set(request.requestId, parked);
    this.keep(parked);
    redirect(res, request);
  }

  /** The answer of a parked request came: it goes to the client waiting for it, or waits for one. */
  arrived(requestId: string, deliver: (res: ServerResponse, req: IncomingMessage) => void): void {
    const parked = this.parked.get(requestId);
    if (!parked) return;
    parked.deliver = deliver;
    parked.waiter?.();
  }

  /** The request parked under `requestId`, if one is and `at` (whether a URL is its function's) says it is here. */
  find(requestId: string, at: (url: WebFunctionAddress) => boolean): LongRequest | undefined {
    const request = this.parked.get(requestId)?.request;
    return request && at(request.url) ? request : undefined;
  }

  /**
   * A client at a result URL: gets the answer when it is there, within the request's `redirectAfterMs`,
   * else a 303 to the same URL. Refuses (404) an id nothing waits at, one parked at another function's
   * URL (`at` says which are here), and a second client.
   */
  fetch(requestId: string, at: (url: WebFunctionAddress) => boolean, req: IncomingMessage, res: ServerResponse): void {
    const parked = this.parked.get(requestId);
    if (!parked || !at(parked.request.url) || parked.waiter) throw new ApiError("NOT_FOUND", NO_RESULT);
    const send = () => {
      clearTimeout(timer);
      parked.waiter = undefined;
      clearTimeout(parked.expiry);
      this.parked.delete(requestId);
      res.once("close", () => parked.request.end(res.writableFinished));
      parked.deliver!(res, req);
    };
    const timer = setTimeout(() => {
      parked.waiter = undefined;
      this.keep(parked);
      redirect(res, parked.request);
    }, parked.request.redirectAfterMs);
    res.once("close", () => {
      if (parked.waiter !== send) return;
      clearTimeout(timer);
      parked.waiter = undefined;
      this.keep(parked);
    });
    if (parked.deliver) {
      send();
      return;
    }
    parked.waiter = send;
    clearTimeout(parked.expiry);
  }

  /** Drops every parked request (the server is shutting down). */
  close(): void {
    for (const parked of this.parked.values()) {
      clearTimeout(parked.expiry);
      parked.request.end(false);
    }
    this.parked.clear();
  }

  /** How many requests wait for their clients. */
  get size(): number {
    return this.parked.size;
  }

  /** (Re)starts the wait for the client; a request nobody comes for is dropped, and its container let go. */
  private keep(parked: Parked): void {
    clearTimeout(parked.expiry);
    parked.expiry = setTimeout(() => {
      if (parked.waiter) return;
      this.parked.delete(parked.request.requestId);
      parked.request.end(false);
    }, RESULT_KEEP_MS);
    parked.expiry.unref();
  }
}

/** A 303 to the request's result URL, with a JSON body that says what it is. */
function redirect(res: ServerResponse, request: LongRequest): void {
  const location = `${request.prefix}/__skiff/result/${request.requestId}`;
  const text = JSON.stringify({
    status: "running",
    message: "the request is still running: its answer will be at `location` (follow the redirect: curl -L)",
    location,
    requestId: request.requestId,
  });
  res.writeHead(303, {
    location,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
