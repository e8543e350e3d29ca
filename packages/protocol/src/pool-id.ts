import type { SpecOverrides } from "./manifest.js";

/** The separator between a function's id, a class's parameter values and a variant's options in a pool id. */
export const POOL_SEPARATOR = "~";

/** A pool id's parts: the function (or class) id, a class's parameter values, a variant's options. */
export interface PoolIdParts {
  baseId: string;
  /** base64url JSON, or undefined for the class's default values. */
  params: string | undefined;
  /** base64url JSON of `SpecOverrides` (see the SDK's withOptions), or undefined. */
  options: string | undefined;
}

/**
 * The id of a pool of containers: a function or class id, then (after `~`) a class's parameter values,
 * then (after a second `~`) a variant's options from `withOptions`, each as base64url JSON with sorted
 * keys, so that equal values name one pool. `poolId("fu-1", {}) === "fu-1"`.
 */
export function poolId(baseId: string, params: Record<string, unknown>, overrides?: SpecOverrides): string {
  const values = encodePoolPart(params);
  const options = overrides ? encodePoolPart(overrides) : "";
  if (!options) return values ? `${baseId}${POOL_SEPARATOR}${values}` : baseId;
  return `${baseId}${POOL_SEPARATOR}${values}${POOL_SEPARATOR}${options}`;
}

/** The parts of `BASE[~PARAMS[~OPTIONS]]` (a plain function id has only its base); undefined if it has more. */
export function poolIdParts(poolId: string): PoolIdParts | undefined {
  const parts = poolId.split(POOL_SEPARATOR);
  if (parts.length > 3) return undefined;
  const [baseId, params, options] = parts as [string, string | undefined, string | undefined];
  return { baseId, params: params || undefined, options: options || undefined };
}

/** The function or class a pool id names: its own id, or its base. */
export function poolBaseId(poolId: string): string {
  return poolId.split(POOL_SEPARATOR)[0]!;
}

/** The value a pool id's part encodes (see poolId); throws a SyntaxError if it is not base64url JSON. */
export function decodePoolPart(encoded: string): unknown {
  return JSON.parse(Buffer.from(encoded, "base64url").toString("utf8"));
}

/** Values as a pool id's part: base64url JSON with sorted keys, undefined values left out; "" for none. */
function encodePoolPart(values: object): string {
  const entries = Object.entries(values)
    .filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  if (entries.length === 0) return "";
  return Buffer.from(JSON.stringify(Object.fromEntries(entries))).toString("base64url");
}
