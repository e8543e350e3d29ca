import type { JsonRoute, Route, RouteAnswer } from "@skiff/protocol";
import type { Context } from "hono";
import type { Api, AuthEnv } from "../auth.js";

/** What a route's handler answers: a JSON route's value, typed by its response schema; else a Response. */
type Answer<R extends Route> = R extends JsonRoute ? RouteAnswer<R> : Response;

/** A route's handler. */
type Handler<R extends Route> = (c: Context<AuthEnv, R["path"]>) => Answer<R> | Promise<Answer<R>>;

/**
 * Mounts `handler` at the route's method and path (see protocol's http routes). A JSON route's handler
 * answers the value, which goes back as JSON; a streaming one answers its Response.
 */
export function serve<R extends Route>(api: Api, route: R, handler: NoInfer<Handler<R>>): void {
  // NoInfer: the route alone picks R, so that a handler's `ok: true` is checked as the literal it must be.
  api.on(route.method, route.path, async (c) => {
    const answer = await handler(c as Context<AuthEnv, R["path"]>);
    return typeof route.response === "string" ? (answer as Response) : c.json(answer as object);
  });
}
