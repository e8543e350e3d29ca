import type { JsonSchema } from "./json-schema.js";

/** A zod 4 schema, as read here: its `_zod.def`, and the `toJSONSchema` method zod 4's classic API gives. */
export interface Zod4Like {
  _zod: { def: Record<string, unknown> & { type: string }; optin?: "optional" };
  description?: string;
  toJSONSchema?: (params?: { io?: "input" | "output"; unrepresentable?: "any" | "throw" }) => JsonSchema;
}

interface Check4 {
  check?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  length?: number;
  value?: unknown;
  inclusive?: boolean;
  pattern?: RegExp;
}

/** zod 4's string formats that JSON Schema names otherwise (the others keep their name). */
const FORMATS: Record<string, string> = { url: "uri", datetime: "date-time", ipv4: "ipv4", ipv6: "ipv6" };

/** Whether `value` is a zod 4 schema (zod 4 keeps its internals under `_zod`; zod 3 has none). */
export function isZod4(value: unknown): value is Zod4Like {
  const zod = typeof value === "object" && value !== null ? (value as { _zod?: { def?: unknown } })._zod : undefined;
  return typeof zod?.def === "object" && zod.def !== null;
}

/**
 * The JSON Schema of a zod 4 schema, as a request's input (a field with a default is not required). zod's own
 * `toJSONSchema` when the schema has it (zod 4's classic API, from 4.1), else a reading of its definition for
 * the common kinds. zod's answer loses the `$schema` key (OpenAPI has its own) and the bounds it adds to every
 * integer (±2^53), which say nothing a reader needs.
 */
export function zod4JsonSchema(schema: Zod4Like): JsonSchema {
  if (typeof schema.toJSONSchema === "function") {
    try {
      const { $schema: _, ...rest } = schema.toJSONSchema({ io: "input", unrepresentable: "any" });
      return withoutSafeIntBounds(rest) as JsonSchema;
    } catch {
      // A schema zod cannot render (a cycle, say): read its definition instead.
    }
  }
  return read(schema, 0);
}

function withoutSafeIntBounds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutSafeIntBounds);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const safeBound =
      (key === "minimum" && item === Number.MIN_SAFE_INTEGER) ||
      (key === "maximum" && item === Number.MAX_SAFE_INTEGER);
    if (!safeBound) out[key] = withoutSafeIntBounds(item);
  }
  return out;
}

function read(schema: unknown, depth: number): JsonSchema {
  if (!isZod4(schema) || depth > 32) return {};
  const out = convert(schema, depth + 1);
  return schema.description ? { ...out, description: schema.description } : out;
}

function convert(schema: Zod4Like, depth: number): JsonSchema {
  const def = schema._zod.def;
  const inner = (key: string) => read(def[key], depth);
  // A format schema (`z.uuid()`, `z.int()`) is its own check; refinements (`.min(1)`) are in `checks`.
  const checks = [def as Check4, ...((def.checks ?? []) as Zod4Like[]).map((check) => check._zod.def as Check4)];
  switch (def.type) {
    case "string":
      return withChecks({ type: "string" }, checks, "Length");
    case "number": {
      const integer = checks.some((check) => check.check === "number_format" && check.format?.includes("int"));
      return withChecks({ type: integer ? "integer" : "number" }, checks, "");
    }
    case "bigint":
      return { type: "integer" };
    case "boolean":
      return { type: "boolean" };
    case "null":
      return { type: "null" };
    case "date":
      return { type: "string", format: "date-time" };
    case "literal": {
      const values = def.values as unknown[];
      return values.length === 1 ? { const: values[0] } : { enum: values };
    }
    case "enum": {
      const values = Object.values(def.entries as Record<string, unknown>);
      return values.every((v) => typeof v === "string") ? { type: "string", enum: values } : { enum: values };
    }
    case "array":
      return withChecks({ type: "array", items: inner("element") }, checks, "Items");
    case "tuple":
      return { type: "array", prefixItems: (def.items as unknown[]).map((item) => read(item, depth)) };
    case "object":
      return objectSchema(def, depth);
    case "record":
      return { type: "object", additionalProperties: inner("valueType") };
    case "union":
      return { anyOf: (def.options as unknown[]).map((option) => read(option, depth)) };
    case "intersection":
      return { allOf: [inner("left"), inner("right")] };
    case "nullable":
      return { anyOf: [inner("innerType"), { type: "null" }] };
    case "default":
    case "prefault":
      return { ...inner("innerType"), default: def.defaultValue };
    case "pipe":
      return inner("in");
    case "lazy":
      return read((def.getter as () => unknown)(), depth);
    case "optional":
    case "nonoptional":
    case "readonly":
    case "catch":
      return inner("innerType");
    default:
      return {};
  }
}

function objectSchema(def: Record<string, unknown>, depth: number): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [key, field] of Object.entries(def.shape as Record<string, unknown>)) {
    properties[key] = read(field, depth);
    if (!isZod4(field) || field._zod.optin !== "optional") required.push(key);
  }
  // A strict object's catchall is `never`: it refuses unknown keys (others strip or keep them).
  const strict = isZod4(def.catchall) && def.catchall._zod.def.type === "never";
  return {
    type: "object",
    properties,
    ...(required.length > 0 ? { required } : {}),
    ...(strict ? { additionalProperties: false } : {}),
  };
}

/** Bounds and formats of strings (`Length`), arrays (`Items`) and numbers (``). */
function withChecks(base: JsonSchema, checks: Check4[], unit: "Length" | "Items" | ""): JsonSchema {
  const out = { ...base };
  for (const check of checks) {
    if (check.check === "min_length" && unit) out[`min${unit}`] = check.minimum;
    else if (check.check === "max_length" && unit) out[`max${unit}`] = check.maximum;
    else if (check.check === "length_equals" && unit) {
      out[`min${unit}`] = check.length;
      out[`max${unit}`] = check.length;
    } else if (check.check === "greater_than") out[check.inclusive ? "minimum" : "exclusiveMinimum"] = check.value;
    else if (check.check === "less_than") out[check.inclusive ? "maximum" : "exclusiveMaximum"] = check.value;
    else if (check.check === "string_format" && check.format === "regex" && check.pattern) {
      out.pattern = check.pattern.source;
    } else if (check.check === "string_format" && check.format) {
      out.format = FORMATS[check.format] ?? check.format;
    }
  }
  return out;
}
