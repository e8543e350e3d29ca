import { SkiffError } from "../errors.js";
import { endpointHandler } from "./endpoint.js";
import { isValueStream } from "./stream-response.js";
import { type FetchHandler, WebFunction } from "./web-function.js";
import {
  checkLabel,
  type EndpointOptions,
  endpointMethod,
  maxBodyBytes,
  redirectAfterMs,
  type Schema,
  serverPort,
  splitWebOptions,
  type WebDeclaration,
  type WebOptions,
  type WebServerOptions,
} from "./web-options.js";

/** What an endpoint's handler gets: the parsed query and body, merged into one object (the body's keys win). */
export type EndpointInput<B, Q> = ([B] extends [Schema<infer T>] ? T : unknown) &
  ([Q] extends [Schema<infer T>] ? T : unknown);

/** Makes the WebFunction of `app.web(options, handler)`. */
export function declareWeb(appName: string, options: WebOptions, handler: FetchHandler): WebFunction {
  const where = whereOf("app.web", options);
  if (typeof handler !== "function") {
    throw new TypeError(`${where}: app.web(options, handler) needs a fetch handler, (request: Request) => Response`);
  }
  const { functionOptions, web } = splitWebOptions(where, "fetch", options);
  const declaration = checked(where, {
    kind: "fetch",
    label: web.label as string | undefined,
    requiresProxyAuth: web.requiresProxyAuth as boolean | undefined,
    redirectAfterMs: redirectAfterMs(where, web.redirectAfter),
  });
  return new WebFunction(appName, functionOptions, declaration, async (request) => webAnswer(await handler(request)));
}

/**
 * An app.web handler's answer, which is a Response (the fetch contract: any framework's handler, and
 * `local()` in tests, give one). An async iterable is refused, saying how to stream it: it would otherwise
 * be a second wire format for the value app.endpoint streams as JSON.
 */
function webAnswer(value: Response): Response {
  if (value instanceof Response || !isValueStream(value)) return value;
  throw new SkiffError(
    "BAD_REQUEST",
    "an app.web handler returns a Response, and this one returned an async iterable (an async generator, or a .remoteGen call): " +
      'return streamResponse(iterable, request) (import { streamResponse } from "skiff") to send its values as they come, ' +
      "as JSON (server-sent events, or NDJSON when the request asks), as app.endpoint does with one; " +
      "for raw text or bytes, return new Response(stream) with a ReadableStream of Uint8Array chunks",
  );
}

/** Makes the WebFunction of `app.endpoint(options, handler)`. */
export function declareEndpoint<B extends Schema | undefined, Q extends Schema | undefined>(
  appName: string,
  options: EndpointOptions<B, Q>,
  handler: (input: EndpointInput<B, Q>, request: Request) => unknown,
): WebFunction {
  const where = whereOf("app.endpoint", options);
  if (typeof handler !== "function") {
    throw new TypeError(`${where}: app.endpoint(options, handler) needs a handler: (input, request) => value`);
  }
  const { functionOptions, web } = splitWebOptions(where, "endpoint", options);
  for (const part of ["body", "query"] as const) {
    const schema = options[part];
    if (schema !== undefined && typeof (schema as Schema).safeParse !== "function") {
      throw new TypeError(`${where}: ${part} must be a zod schema such as z.object({ name: z.string() })`);
    }
  }
  const method = endpointMethod(where, options.method, options.body !== undefined);
  const docs = options.docs ?? false;
  const redirectAfter = redirectAfterMs(where, web.redirectAfter);
  let fn: WebFunction | undefined;
  const fetch = endpointHandler({
    title: () => fn?.name ?? "endpoint",
    method,
    body: options.body,
    query: options.query,
    docs,
    redirects: redirectAfter !== null,
    maxBodyBytes: maxBodyBytes(where, options.maxBodySize),
    handler: handler as (input: unknown, request: Request) => unknown,
  });
  const declaration = checked(where, {
    kind: "endpoint",
    label: web.label as string | undefined,
    requiresProxyAuth: web.requiresProxyAuth as boolean | undefined,
    redirectAfterMs: redirectAfter,
    method,
    docs,
  });
  fn = new WebFunction(appName, functionOptions, declaration, fetch);
  return fn;
}

/** Makes the WebFunction of `app.webServer(options, start)`. */
export function declareWebServer(appName: string, options: WebServerOptions, start: () => unknown): WebFunction {
  const where = whereOf("app.webServer", options);
  if (typeof start !== "function") {
    throw new TypeError(`${where}: app.webServer(options, start) needs a function that starts your server`);
  }
  const { functionOptions, web } = splitWebOptions(where, "server", options);
  const port = serverPort(where, options.port);
  const declaration = checked(where, {
    kind: "server",
    label: web.label as string | undefined,
    requiresProxyAuth: web.requiresProxyAuth as boolean | undefined,
    redirectAfterMs: redirectAfterMs(where, web.redirectAfter),
    port,
  });
  return new WebFunction(appName, functionOptions, declaration, undefined, start);
}

function whereOf(call: string, options: unknown): string {
  const name = (options as { name?: unknown } | null)?.name;
  return typeof name === "string" ? `function "${name}"` : `${call}(options)`;
}

/** A declaration whose given label and flags are checked here, so that the error points at the user's line. */
function checked(where: string, web: WebDeclaration): WebDeclaration {
  if (web.requiresProxyAuth !== undefined && typeof web.requiresProxyAuth !== "boolean") {
    throw new TypeError(`${where}: requiresProxyAuth must be true or false`);
  }
  if (web.docs !== undefined && typeof web.docs !== "boolean")
    throw new TypeError(`${where}: docs must be true or false`);
  if (web.label !== undefined) checkLabel(where, web.label, false);
  return web;
}
