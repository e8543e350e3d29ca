import { docsPage } from "./docs-page.js";
import { errorResponse } from "./error-response.js";
import { openApiDocument } from "./openapi.js";
import { isValueStream, streamResponse } from "./stream-response.js";
import type { FetchHandler } from "./web-function.js";
import type { HttpMethod, Schema } from "./web-options.js";

/** What `app.endpoint` builds its fetch handler from, checked. */
export interface EndpointConfig {
  /** The endpoint's export name (its OpenAPI title and operation id). */
  title: () => string;
  method: HttpMethod;
  body?: Schema | undefined;
  query?: Schema | undefined;
  docs: boolean;
  /** Long requests are answered 303 to their result URL (`redirectAfter` is not false). */
  redirects?: boolean | undefined;
  maxBodyBytes: number;
  handler: (input: unknown, request: Request) => unknown;
}

type Parsed = { ok: true; value: unknown } | { ok: false; response: Response };

/**
 * The fetch handler of an endpoint: answers its method at `/` with the handler's value (a Response as it
 * is, a string as text/plain, `undefined` as 204, an async iterable as a stream of JSON values (server-sent
 * events, or NDJSON when asked: see streamResponse), anything else as JSON) once the query and JSON body
 * match their schemas; 400 for a body that is not JSON, 422 with the schema's issues, 413 for a body over
 * `maxBodyBytes`, 405 for another method, 404 elsewhere. With `docs`, `/docs` and `/openapi.json` too.
 * A throw from the handler propagates: the runner answers it with 500 and logs the stack.
 */
export function endpointHandler(config: EndpointConfig): FetchHandler {
  let openapi: string | undefined;
  const document = () => {
    openapi ??= JSON.stringify(openApiDocument(config.title(), config));
    return openapi;
  };
  return async (request) => {
    const { pathname, searchParams } = new URL(request.url);
    // HEAD is GET without the body (the runner's server drops the body of an answer to HEAD).
    const method = request.method === "HEAD" ? "GET" : request.method;
    if (config.docs && method === "GET" && pathname === "/openapi.json") {
      return new Response(document(), { headers: { "content-type": "application/json" } });
    }
    if (config.docs && method === "GET" && (pathname === "/docs" || pathname === "/docs/")) {
      return new Response(docsPage(config.title(), document()), {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    if (pathname !== "/") {
      const undocumented = !config.docs && /^\/(docs\/?|openapi\.json)$/.test(pathname);
      return errorResponse(
        request,
        404,
        "NOT_FOUND",
        `no route ${pathname}: this endpoint answers at its URL's root${undocumented ? " (declare it with `docs: true` to serve /docs and /openapi.json)" : ""}`,
      );
    }
    if (method !== config.method) {
      return errorResponse(
        request,
        405,
        "METHOD_NOT_ALLOWED",
        `this endpoint answers ${config.method}, not ${request.method}`,
        {},
        { allow: config.method === "GET" ? "GET, HEAD" : config.method },
      );
    }
    const parts: object[] = [];
    if (config.query) {
      const query = validate(request, "query", config.query, queryObject(searchParams));
      if (!query.ok) return query.response;
      parts.push(query.value as object);
    }
    if (config.body) {
      const json = await readJson(request, config.maxBodyBytes);
      const body = json.ok ? validate(request, "body", config.body, json.value) : json;
      if (!body.ok) return body.response;
      parts.push(body.value as object);
    }
    const input = parts.length === 1 ? parts[0] : Object.assign({}, ...parts);
    return toResponse(await config.handler(input, request), request);
  };
}

/** A query string as an object: a key given once is a string, given more often a list of strings. */
function queryObject(params: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    out[key] = values.length === 1 ? values[0]! : values;
  }
  return out;
}

function validate(request: Request, part: "body" | "query", schema: Schema, value: unknown): Parsed {
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, value: result.data };
  return {
    ok: false,
    response: errorResponse(request, 422, "INVALID", `the ${part} does not match the endpoint's schema`, {
      issues: result.error.issues,
    }),
  };
}

/** The body as JSON (`undefined` when empty), read up to `limit` bytes: a larger one is refused unread. */
async function readJson(request: Request, limit: number): Promise<Parsed> {
  const tooLarge = () => ({
    ok: false as const,
    response: errorResponse(
      request,
      413,
      "PAYLOAD_TOO_LARGE",
      `the body is over this endpoint's limit of ${limit} bytes`,
    ),
  });
  if (Number(request.headers.get("content-length") ?? 0) > limit) return tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    const reader = request.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        return tooLarge();
      }
      chunks.push(value);
    }
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (text.trim() === "") return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (error) {
    return {
      ok: false,
      response: errorResponse(request, 400, "BAD_REQUEST", `the body is not JSON: ${(error as Error).message}`),
    };
  }
}

/** A handler's value as a Response; a stream of values (an async generator) streams, as SSE or NDJSON. */
function toResponse(value: unknown, request: Request): Response {
  if (value instanceof Response) return value;
  if (isValueStream(value)) return streamResponse(value, request);
  if (value === undefined) return new Response(null, { status: 204 });
  if (typeof value === "string")
    return new Response(value, { headers: { "content-type": "text/plain; charset=utf-8" } });
  return Response.json(value);
}
