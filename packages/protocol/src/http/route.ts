import type { z } from "zod";

/** The methods the API's routes use. */
export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "DELETE";

/**
 * One route of the server's HTTP API, defined once for the server (which mounts it and checks what comes
 * in) and its clients (which call it and check what comes back): its method, its path with `:param`s,
 * and the shapes of its query, body and answer. A schema describes JSON; `"bytes"` is a raw body streamed
 * as it is, `"lines"` an answer of text lines sent as they come, `"none"` an answer without a body.
 * @example
 * const stopApp = route({ method: "POST", path: "/v1/apps/:app/stop", response: z.object({ appId: z.string() }) });
 */
export interface Route {
  readonly method: HttpMethod;
  readonly path: string;
  /** The query string's parameters: strings, or absent. */
  readonly query?: z.AnyZodObject;
  readonly body?: z.ZodTypeAny | "bytes";
  readonly response: z.ZodTypeAny | "lines" | "bytes" | "none";
}

/** A route that answers JSON. */
export type JsonRoute = Route & { readonly response: z.ZodTypeAny };

/** A route that answers text lines as they come (an image build). */
export type LinesRoute = Route & { readonly response: "lines" };

/** Defines a route, keeping its method and path as literal types (see Route). */
export function route<const R extends Route>(definition: R): R {
  return definition;
}

/** The names of a path's `:param`s. */
type ParamNames<Path extends string> = Path extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<Rest>
  : Path extends `${string}:${infer Name}`
    ? Name
    : never;

/** A route's path parameters, by name. */
export type RouteParams<R extends Route> = { [Name in ParamNames<R["path"]>]: string };

/** A part of a call: absent where the route has none, optional where nothing in it is required. */
type Part<Key extends string, T, Optional extends boolean> = [T] extends [never]
  ? unknown
  : Optional extends true
    ? Record<string, never> extends T
      ? { [K in Key]?: T }
      : { [K in Key]: T }
    : { [K in Key]: T };

/**
 * What a client sends to a route: its path parameters, query and JSON body, each where it has one. A
 * body is always sent, even one whose fields all have defaults: the server reads a route's body as JSON.
 */
export type RouteInput<R extends Route> = Part<
  "params",
  [ParamNames<R["path"]>] extends [never] ? never : RouteParams<R>,
  false
> &
  Part<"query", R["query"] extends z.ZodTypeAny ? z.input<R["query"]> : never, true> &
  Part<"body", R["body"] extends z.ZodTypeAny ? z.input<R["body"]> : never, false>;

/** A route's JSON answer as its client gets it, checked by the route's response schema. */
export type RouteResponse<R extends JsonRoute> = z.output<R["response"]>;

/** What a route's handler answers, before JSON: instants may still be Dates (JSON writes them as strings). */
export type RouteAnswer<R extends JsonRoute> = z.input<R["response"]>;

/** The path and query string a call of `route` goes to, its parameters encoded. */
export function pathOf(
  route: Route,
  input: { params?: Record<string, string>; query?: Record<string, string | undefined> } = {},
): string {
  const path = route.path.replace(/:([A-Za-z]+)/g, (_, name: string) => {
    const value = input.params?.[name];
    if (value === undefined) throw new Error(`${route.method} ${route.path} needs its "${name}" parameter`);
    return encodeURIComponent(value);
  });
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(input.query ?? {})) if (value !== undefined) query.set(key, value);
  const search = query.toString();
  return search ? `${path}?${search}` : path;
}
