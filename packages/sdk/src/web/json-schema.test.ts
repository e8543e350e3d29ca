import { describe, expect, it, vi } from "vitest";
import { z } from "zod";
import { z as z4 } from "zod/v4";
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

  it("reads a zod 4 schema (what `npm install zod` gives) by its definition", () => {
    const schema = z4
      .object({
        id: z4.uuid(),
        name: z4.string().min(1).max(10).describe("who"),
        size: z4.enum(["s", "m"]).default("m"),
        tags: z4.array(z4.string()).min(1),
        score: z4.number().gt(0).lte(1).nullable(),
        steps: z4.number().int(),
        kind: z4.union([z4.literal("a"), z4.literal(1)]),
        extra: z4.record(z4.string(), z4.number()).optional(),
        at: z4.coerce.date(),
        pair: z4.tuple([z4.string(), z4.boolean()]),
        trimmed: z4.string().transform((s) => s.trim()),
        code: z4.string().regex(/^[a-z]+$/),
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
        steps: { type: "integer" },
        kind: { anyOf: [{ const: "a" }, { const: 1 }] },
        extra: { type: "object", additionalProperties: { type: "number" } },
        at: { type: "string", format: "date-time" },
        pair: { type: "array", prefixItems: [{ type: "string" }, { type: "boolean" }] },
        trimmed: { type: "string" },
        code: { type: "string", pattern: "^[a-z]+$" },
      },
      required: ["id", "name", "tags", "score", "steps", "kind", "at", "pair", "trimmed", "code"],
      additionalProperties: false,
    });
  });

  it("asks a zod 4 schema with a toJSONSchema method for its input schema, without $schema or ±2^53 bounds", () => {
    const schema = z4.object({ prompt: z4.string().describe("what to make"), steps: z4.number().int().default(20) });
    const method = vi.fn((params?: Parameters<typeof z4.toJSONSchema>[1]) => z4.toJSONSchema(schema, params));
    const withMethod = Object.assign(schema, { toJSONSchema: method });
    expect(toJsonSchema(withMethod)).toEqual({
      type: "object",
      properties: {
        prompt: { type: "string", description: "what to make" },
        steps: { type: "integer", default: 20 },
      },
      required: ["prompt"],
    });
    expect(method).toHaveBeenCalledWith({ io: "input", unrepresentable: "any" });
  });
});
