import { describe, expect, it } from "vitest";
import { z } from "zod";
import { pathOf, route } from "./route.js";

const rollback = route({ method: "POST", path: "/v1/apps/:app/versions/:version", response: z.object({}) });

describe("pathOf", () => {
  it("fills the path's parameters, encoded, and adds the query's present values", () => {
    expect(pathOf(rollback, { params: { app: "a b/c", version: "2" } })).toBe("/v1/apps/a%20b%2Fc/versions/2");
    expect(pathOf(rollback, { params: { app: "a", version: "1" }, query: { env: "main", kind: undefined } })).toBe(
      "/v1/apps/a/versions/1?env=main",
    );
  });

  it("refuses a call without one of its parameters", () => {
    expect(() => pathOf(rollback, { params: { app: "a" } })).toThrow('needs its "version" parameter');
  });
});
