import { isZod4, zod4JsonSchema } from "./zod4-json-schema.js";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it). */
export type JsonSchema = Record<string, unknown>;

interface ZodLike {
  _def: Record<string, unknown> & { typeName?: string; description?: string };
  isOptional?: () => boolean;
}

interface Check {
  kind: string;
  value?: unknown;
  regex?: RegExp;
  inclusive?: boolean;
}

const STRING_FORMATS: Record<string, string> = {
  email: "email",
  url: "uri",
  uuid: "uuid",
  datetime: "date-time",
  date: "date",
  time: "time",
  ip: "ip",
};

/**
 * The JSON Schema of a zod schema, for OpenAPI documents: objects, arrays, tuples, records, unions,
 * enums, literals, strings, numbers, booleans and their common checks, defaults and descriptions. A
 * refinement or transform documents its input; a kind it does not know documents any value. Schemas are
 * read by their definition, not by class: the user's bundle carries its own copy of zod, 3 or 4 (a zod 4
 * schema, which `npm install zod` gives, goes to `zod4JsonSchema`).
 * @example
 * toJsonSchema(z.object({ n: z.number().int() })) // { type: "object", properties: { n: { type: "integer" } }, required: ["n"] }
 */
export function toJsonSchema(schema: unknown, depth = 0): JsonSchema {
  // zod 4 has a `_def` too (its definition, which names no typeName): look for its own mark first.
  if (isZod4(schema)) return zod4JsonSchema(schema);
  if (!isZod(schema) || depth > 32) return {};
  const out = convert(schema, depth + 1);
  const description = schema._def.description;
  return description ? { ...out, description } : out;
}

function isZod(value: unknown): value is ZodLike {
  return typeof value === "object" && value !== null && typeof (value as ZodLike)._def === "object";
}

function convert(schema: ZodLike, depth: number): JsonSchema {
  const def = schema._def;
  const inner = (key: string) => toJsonSchema(def[key], depth);
  const checks = (def.checks ?? []) as Check[];
  switch (def.typeName) {
    case "ZodString":
      return withChecks({ type: "string" }, checks, { min: "minLength", max: "maxLength", length: "length" });
    case "ZodNumber":
      return withChecks({ type: checks.some((check) => check.kind === "int") ? "integer" : "number" }, checks, {
        min: "minimum",
        max: "maximum",
      });
    case "ZodBigInt":
      return { type: "integer" };
    case "ZodBoolean":
      return { type: "boolean" };
    case "ZodNull":
      return { type: "null" };
    case "ZodDate":
      return { type: "string", format: "date-time" };
    case "ZodLiteral":
      return { const: def.value };
    case "ZodEnum":
      return { type: "string", enum: def.values };
    case "ZodNativeEnum":
      return { enum: Object.values(def.values as object).filter((v) => typeof (def.values as never)[v] !== "number") };
    case "ZodArray":
      return {
        type: "array",
        items: inner("type"),
        ...(def.minLength ? { minItems: (def.minLength as { value: number }).value } : {}),
        ...(def.maxLength ? { maxItems: (def.maxLength as { value: number }).value } : {}),
      };
    case "ZodTuple":
      return { type: "array", prefixItems: (def.items as unknown[]).map((item) => toJsonSchema(item, depth)) };
    case "ZodObject":
      return objectSchema(schema, depth);
    case "ZodRecord":
      return { type: "object", additionalProperties: inner("valueType") };
    case "ZodUnion":
    case "ZodDiscriminatedUnion":
      return { anyOf: [...(def.options as Iterable<unknown>)].map((option) => toJsonSchema(option, depth)) };
    case "ZodIntersection":
      return { allOf: [inner("left"), inner("right")] };
    case "ZodOptional":
      return inner("innerType");
    case "ZodNullable":
      return { anyOf: [inner("innerType"), { type: "null" }] };
    case "ZodDefault":
      return { ...inner("innerType"), default: (def.defaultValue as () => unknown)() };
    case "ZodEffects":
      return inner("schema");
    case "ZodPipeline":
      return inner("in");
    case "ZodLazy":
      return toJsonSchema((def.getter as () => unknown)(), depth);
    case "ZodBranded":
      return inner("type");
    case "ZodReadonly":
    case "ZodCatch":
      return inner("innerType");
    default:
      return {};
  }
}

function objectSchema(schema: ZodLike, depth: number): JsonSchema {
  const shape = (schema._def.shape as () => Record<string, unknown>)();
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [key, field] of Object.entries(shape)) {
    properties[key] = toJsonSchema(field, depth);
    if (!(field as ZodLike).isOptional?.()) required.push(key);
  }
  // zod strips unknown keys by default: only a strict object refuses them.
  return {
    type: "object",
    properties,
    ...(required.length > 0 ? { required } : {}),
    ...(schema._def.unknownKeys === "strict" ? { additionalProperties: false } : {}),
  };
}

function withChecks(base: JsonSchema, checks: Check[], bounds: Record<string, string>): JsonSchema {
  const out = { ...base };
  for (const check of checks) {
    const bound = bounds[check.kind];
    if (bound === "length") {
      out.minLength = check.value;
      out.maxLength = check.value;
    } else if (bound) {
      const exclusive = check.inclusive === false;
      out[exclusive ? `exclusive${bound[0]!.toUpperCase()}${bound.slice(1)}` : bound] = check.value;
    } else if (check.kind === "regex" && check.regex) {
      out.pattern = check.regex.source;
    } else if (STRING_FORMATS[check.kind]) {
      out.format = STRING_FORMATS[check.kind];
    }
  }
  return out;
}
