import type { WebSpec } from "@skiff/protocol";
import { WEB_LABEL } from "@skiff/protocol/constants";
import { optionsProblem } from "@skiff/protocol/options";
import { type Duration, parseDuration, parseSize, type Size } from "@skiff/protocol/units";
import { CLASS_OPTIONS, type FunctionOptions } from "../function-spec.js";

/** A function's options that make no sense for one that answers HTTP, with why. */
const REFUSED: Readonly<Record<string, string>> = {
  batched: "requests are not gathered into batches",
  schedule: "it runs when requests come, not on a schedule",
  retries: "a failed request is answered with its error, not retried",
};

/**
 * Options of `app.web`, `app.endpoint` and `app.webServer`: a function's options (but `batched`,
 * `schedule` and `retries`), plus where its URL is and who may call it.
 */
export interface WebOptions extends Omit<FunctionOptions, "batched" | "schedule" | "retries"> {
  /** The last part of its URL, `/w/ENV/APP/LABEL`. Default: the export name, lowercased, `_` as `-`. */
  label?: string;
  /** Requests must carry a proxy token's `Skiff-Key` and `Skiff-Secret` headers (default false). */
  requiresProxyAuth?: boolean;
  /**
   * How long a request may run before its client is answered 303 with a URL where the answer will be
   * (default 150 s, at least 1 s); `false`: never, the request runs to the function's `timeout`.
   */
  redirectAfter?: Duration | false;
}

/** The HTTP methods an endpoint may answer. */
export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** What a schema passed to `app.endpoint` must do: zod's schemas (`z.object({...})`) do. */
export interface Schema<T = unknown> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: unknown[] } };
}

/** Options of `app.endpoint`. */
export interface EndpointOptions<B extends Schema | undefined = undefined, Q extends Schema | undefined = undefined>
  extends WebOptions {
  /** The one method it answers (default: POST with a `body` schema, GET without). */
  method?: HttpMethod;
  /** The JSON body's schema (zod). */
  body?: B;
  /** The query string's schema (zod); values are strings, so use `z.coerce.number()` for numbers. */
  query?: Q;
  /** Serve `/docs` (a page with a form to try it) and `/openapi.json` (default false). */
  docs?: boolean;
  /** The largest body it reads; a larger one gets 413 (default 1 MiB). */
  maxBodySize?: Size;
}

/** Options of `app.webServer`. */
export interface WebServerOptions extends WebOptions {
  /** The port the server listens on inside the container (on 127.0.0.1 or 0.0.0.0). */
  port: number;
  /** How long the server may take to accept connections once started (default 300 s). */
  startupTimeout?: Duration;
}

/** The web part of a web function's declaration: what its WebSpec is made from once it has a name. */
export interface WebDeclaration {
  kind: WebSpec["kind"];
  label?: string | undefined;
  requiresProxyAuth?: boolean | undefined;
  /** Milliseconds; null: never; undefined: the default. */
  redirectAfterMs?: number | null | undefined;
  method?: HttpMethod | undefined;
  docs?: boolean | undefined;
  port?: number | undefined;
}

const WEB_KEYS = ["label", "requiresProxyAuth", "redirectAfter"] as const;
const KIND_KEYS: Record<WebSpec["kind"], readonly string[]> = {
  fetch: [],
  endpoint: ["method", "body", "query", "docs", "maxBodySize"],
  server: ["port"],
};
const HTTP_METHODS: readonly HttpMethod[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/**
 * Splits a web function's options into its function options and its web ones; throws a TypeError naming
 * the first option it does not take (a function option that makes no sense for HTTP says why).
 */
export function splitWebOptions(
  where: string,
  kind: WebSpec["kind"],
  options: unknown,
): { functionOptions: FunctionOptions; web: Record<string, unknown> } {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`${where}: options must be an object such as { label: "api", concurrent: { maxInputs: 10 } }`);
  }
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(REFUSED, key))
      throw new TypeError(`${where}: option "${key}" is not for web functions: ${REFUSED[key]}`);
  }
  const webKeys = [...WEB_KEYS, ...KIND_KEYS[kind]];
  const problem = optionsProblem(where, options, [...CLASS_OPTIONS.filter((key) => key !== "retries"), ...webKeys]);
  if (problem) throw new TypeError(problem);
  const functionOptions: Record<string, unknown> = {};
  const web: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    (webKeys.includes(key) ? web : functionOptions)[key] = value;
  }
  return { functionOptions: functionOptions as FunctionOptions, web };
}

/** An endpoint's method: the one given (checked), else POST with a body schema and GET without. */
export function endpointMethod(where: string, method: unknown, hasBody: boolean): HttpMethod {
  if (method === undefined) return hasBody ? "POST" : "GET";
  const upper = typeof method === "string" ? method.toUpperCase() : method;
  if (!HTTP_METHODS.includes(upper as HttpMethod)) {
    throw new RangeError(`${where}: method must be one of ${HTTP_METHODS.join(", ")}, not ${JSON.stringify(method)}`);
  }
  if (hasBody && (upper === "GET" || upper === "DELETE")) {
    throw new RangeError(`${where}: a ${upper} request has no body: use \`query\`, or method POST`);
  }
  return upper as HttpMethod;
}

/** An endpoint's body limit in bytes (default 1 MiB). */
export function maxBodyBytes(where: string, size: Size | undefined): number {
  return Math.floor(parseSize(size ?? 1, `${where}: maxBodySize`) * 1024 * 1024);
}

/** The longest `redirectAfter`: a day (timers cannot wait much past 24 days, and nobody waits that long). */
const MAX_REDIRECT_AFTER_MS = 24 * 3600_000;

/** `redirectAfter` in milliseconds, checked: undefined for the default, null for never. */
export function redirectAfterMs(where: string, value: unknown): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === false) return null;
  const ms = parseDuration(value as Duration, `${where}: redirectAfter`);
  if (ms < 1000 || ms > MAX_REDIRECT_AFTER_MS) {
    throw new RangeError(
      `${where}: redirectAfter must be from 1s to 24h (or false, to never redirect), not ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

/** A webServer's port, checked. */
export function serverPort(where: string, port: unknown): number {
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65_535) {
    throw new RangeError(`${where}: port must be a whole number from 1 to 65535 (the port your server listens on)`);
  }
  return port as number;
}

/** The label a web function gets from its export name: lowercased, `_` as `-`. */
export function defaultLabel(name: string): string {
  return name.toLowerCase().replaceAll("_", "-");
}

/** A label, checked: throws a RangeError on one that URLs cannot carry (`defaulted`: made from the name). */
export function checkLabel(where: string, label: unknown, defaulted: boolean): string {
  if (typeof label !== "string" || !WEB_LABEL.test(label)) {
    throw new RangeError(
      `${where}: label ${JSON.stringify(label)} cannot be part of a URL: use lowercase letters, digits and '-' (at most 63)${defaulted ? ", or give it a `label`" : ""}`,
    );
  }
  return label;
}

/** The WebSpec of a web function named `name`; throws a RangeError on a label URLs cannot carry. */
export function toWebSpec(name: string, web: WebDeclaration): WebSpec {
  return {
    kind: web.kind,
    label: checkLabel(`function "${name}"`, web.label ?? defaultLabel(name), web.label === undefined),
    docs: web.docs ?? false,
    requiresProxyAuth: web.requiresProxyAuth ?? false,
    ...(web.method ? { method: web.method } : {}),
    ...(web.port ? { port: web.port } : {}),
    ...(web.redirectAfterMs !== undefined ? { redirectAfterMs: web.redirectAfterMs } : {}),
  };
}

/** How long a web function's handler may take to return its Response (its `timeout`, default 300 s). */
export function requestTimeoutMs(options: FunctionOptions): number {
  return parseDuration(options.timeout ?? 300, "timeout");
}
