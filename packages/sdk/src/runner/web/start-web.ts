import type { WebDeclaration } from "../../web/web-options.js";
import { serveFetch } from "./serve-fetch.js";
import { servePort, waitForPort } from "./serve-port.js";
import type { WebServing } from "./web-serving.js";

/** A web function as the runner finds it in the user's bundle (read as data: the bundle has its own SDK). */
export interface WebTarget {
  web: WebDeclaration;
  fetch?: ((request: Request) => Response | Promise<Response>) | undefined;
  start?: (() => unknown) | undefined;
  /** How long a handler may take to return its Response. */
  timeoutMs: number;
}

/**
 * Starts serving a web function on `socketPath`: a fetch handler directly, up to `maxConcurrent` requests
 * at once; a server on a port once its `start` has it accepting connections (a `start` that throws first
 * fails the container's start; the worker bounds the wait with the function's startupTimeout).
 */
export async function startWeb(target: WebTarget, socketPath: string, maxConcurrent: number): Promise<WebServing> {
  if (target.web.kind !== "server") {
    if (!target.fetch) throw new Error("skiff runner: the web function has no fetch handler");
    return serveFetch({
      socketPath,
      fetch: target.fetch,
      maxConcurrent,
      timeoutMs: target.timeoutMs,
      websockets: target.web.kind === "fetch",
    });
  }
  const port = target.web.port;
  if (!target.start || port === undefined)
    throw new Error("skiff runner: the web server has no start function or port");
  let failed = false;
  const started = Promise.resolve()
    .then(target.start)
    .catch((error: unknown) => {
      failed = true;
      throw error;
    });
  // A start that resolves before its server listens is fine (the port decides readiness), and one that
  // runs the server until it stops never resolves.
  await Promise.race([waitForPort(port, () => failed), started.then(() => new Promise<never>(() => {}))]);
  return servePort({ socketPath, port });
}
