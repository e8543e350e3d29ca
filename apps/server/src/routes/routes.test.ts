import * as protocol from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import type { Authenticator } from "../auth.js";
import { apiRoutes } from "./api.js";

/** Every route protocol defines, as `METHOD /path`. */
function definedRoutes(): string[] {
  const groups = Object.entries(protocol)
    .filter(([name]) => name.endsWith("Routes") || name.endsWith("Route"))
    .flatMap(([, value]) => (isRoute(value) ? [value] : Object.values(value as object)));
  return groups.filter(isRoute).map((route) => `${route.method} ${route.path}`);
}

function isRoute(value: unknown): value is protocol.Route {
  return typeof value === "object" && value !== null && "method" in value && "path" in value;
}

describe("HTTP routes", () => {
  it("mounts every route protocol defines, and no other", () => {
    const auth = { middleware: () => async (_c: unknown, next: () => Promise<void>) => next() };
    const api = apiRoutes({ auth: auth as unknown as Authenticator } as Parameters<typeof apiRoutes>[0]);
    const mounted = new Set(api.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`));
    expect([...mounted].sort()).toEqual(definedRoutes().sort());
  });
});
