import { decodePoolPart, type FunctionSpec } from "@skiff/protocol";
import { ApiError } from "../../errors.js";

/**
 * A class pool's parameter values from its pool id (see protocol's pool-id.ts), checked against
 * the class's declared parameters; returned as JSON for the runner.
 */
export function classParams(spec: FunctionSpec, encoded: string): string {
  const declared = new Map((spec.cls?.parameters ?? []).map((p) => [p.name, p.type] as const));
  let values: Record<string, unknown>;
  try {
    values = decodePoolPart(encoded) as Record<string, unknown>;
  } catch {
    throw new ApiError("BAD_REQUEST", `the parameters of ${spec.name} in its pool id are not valid`);
  }
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ApiError("BAD_REQUEST", `the parameters of ${spec.name} must be an object`);
  }
  for (const [name, value] of Object.entries(values)) {
    const type = declared.get(name);
    if (!type) {
      const names = [...declared.keys()].join(", ") || "none";
      throw new ApiError("BAD_REQUEST", `${spec.name} has no parameter "${name}" (its parameters: ${names})`);
    }
    if (typeof value !== type) {
      throw new ApiError("BAD_REQUEST", `${spec.name}: parameter "${name}" must be a ${type}, not ${typeof value}`);
    }
  }
  return JSON.stringify(values);
}
