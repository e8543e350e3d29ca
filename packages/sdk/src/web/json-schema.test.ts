import { describe, expect, it } from "vitest";
import { z } from "zod";
import { toJsonSchema } from "./json-schema.js";

describe("toJsonSchema", () => {
  it("converts the common zod kinds, their checks, defaults and descriptions", () => {
    const schema = z
      .object({
        id: z.string().uuid(),
        name: z.string().min(1).max(10).describe("who"),
        size: z.enum(["s", "m"]).default("m"),
        tags: z.array(z.string()).min(1),
        score: z.number().gt(0).lte(1).nullable(),
        kind: z.union([z.literal("a"), z.literal(1)]),
        extra: z.record(z.number()).optional(),
        at: z.coerce.date(),
        pair: z.tuple([z.string(), z.boolean()]),
        trimmed: z.string().transform((s) => s.trim()),
      })
      .strict();
    expect(toJsonSchema(schema)).toEqual({
      type: "object",
      properties: {
        id: { type: "string", format: "uuid" },
        name: { type: "string", minLength: 1, maxLength: 10, description: "who" },
        size: { type: "string", enum: ["s", "m"], default: "m" },
        tags: { type: "array", items: { type: "string" }, minItems: 1 },
        score: { anyOf: [{ type: "number", exclusiveMinimum: 0, maximum: 1 }, { type: "null" }] },
        kind: { anyOf: [{ const: "a" }, { const: 1 }] },
        extra: { type: "object", additionalProperties: { type: "number" } },
        at: { type: "string", format: "date-time" },
        pair: { type: "array", prefixItems: [{ type: "string" }, { type: "boolean" }] },
        trimmed: { type: "string" },
      },
      required: ["id", "name", "tags", "score", "kind", "at", "pair", "trimmed"],
      additionalProperties: false,
    });
  });

  it("documents a kind it does not know, or a value that is not a schema, as any value", () => {
    expect(toJsonSchema(z.any())).toEqual({});
    expect(toJsonSchema({ not: "zod" })).toEqual({});
  });
});
