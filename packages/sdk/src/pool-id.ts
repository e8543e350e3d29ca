import type { SpecOverrides } from "@skiff/protocol";

/**
 * The id of a pool of containers: a function or class id, then (after `~`) a class's parameter values,
 * then (after a second `~`) a variant's options from `withOptions`, each as base64url JSON with sorted
 * keys, so that equal values name one pool. `poolId("fu-1", {}) === "fu-1"`.
 */
export function poolId(baseId: string, params: Record<string, unknown>, overrides?: SpecOverrides): string {
  const values = encode(params);
  const options = overrides ? encode(overrides) : "";
  if (!options) return values ? `${baseId}~${values}` : baseId;
  return `${baseId}~${values}~${options}`;
}

function encode(values: object): string {
  const entries = Object.entries(values)
    .filter(([, value]) => value !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  if (entries.length === 0) return "";
  return Buffer.from(JSON.stringify(Object.fromEntries(entries))).toString("base64url");
}
