import { type FunctionSpec, SpecOverrides } from "@skiff/protocol";
import { ApiError } from "../errors.js";

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

/** Splits `BASE[~PARAMS[~OPTIONS]]` (see the SDK's poolId); undefined for a plain function id. */
export function splitPoolId(poolId: string): PoolIdParts | undefined {
  const parts = poolId.split(POOL_SEPARATOR);
  if (parts.length === 1) return undefined;
  if (parts.length > 3) throw new ApiError("BAD_REQUEST", `pool id ${poolId} is not valid`);
  const [baseId, params, options] = parts as [string, string, string | undefined];
  return { baseId, params: params || undefined, options: options || undefined };
}

/**
 * A variant's options from its pool id, checked against the function it varies: the names and values a
 * function's options take, and the rules between them (`withOptions` on a deployed function is checked
 * here only, where its spec is known). Errors name the function and the option.
 */
export function poolOverrides(spec: FunctionSpec, encoded: string): SpecOverrides {
  const where = `${spec.kind} "${spec.name}": withOptions`;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(encoded, "base64url").toString("utf8"));
  } catch {
    throw new ApiError("BAD_REQUEST", `${where}: the options in its pool id are not valid JSON`);
  }
  const parsed = SpecOverrides.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const message =
      issue.code === "unrecognized_keys"
        ? `option "${issue.keys[0]}" cannot be changed by withOptions (it changes ${Object.keys(SpecOverrides.shape).join(", ")})`
        : `option "${issue.path.join(".")}": ${issue.message}`;
    throw new ApiError("BAD_REQUEST", `${where}: ${message}`);
  }
  const overrides = parsed.data;
  if (overrides.batched && spec.kind === "class")
    throw new ApiError("BAD_REQUEST", `${where}: batched is for functions, not classes`);
  if (overrides.maxInputs !== undefined && !overrides.batched && spec.batched) {
    throw new ApiError("BAD_REQUEST", `${where}: "${spec.name}" is batched: change batched, not concurrent`);
  }
  const merged = withOverrides(spec, overrides);
  const target = merged.targetInputs ?? merged.maxInputs;
  if (target > merged.maxInputs) {
    throw new ApiError(
      "BAD_REQUEST",
      `${where}: concurrent.targetInputs (${target}) must be at most maxInputs (${merged.maxInputs})`,
    );
  }
  if (merged.maxContainers < Math.max(1, merged.minContainers)) {
    throw new ApiError(
      "BAD_REQUEST",
      `${where}: maxContainers (${merged.maxContainers}) must be at least minContainers (${merged.minContainers}) and 1`,
    );
  }
  return overrides;
}

/**
 * A function's spec with a variant's options on top. New batches replace concurrency; a new
 * `maxInputs` without a `targetInputs` drops the old target.
 */
export function withOverrides(spec: FunctionSpec, overrides: SpecOverrides): FunctionSpec {
  const merged: FunctionSpec = { ...spec, ...overrides, secrets: overrides.secrets ?? spec.secrets };
  if (overrides.maxInputs !== undefined && overrides.targetInputs === undefined) delete merged.targetInputs;
  if (overrides.batched) merged.maxInputs = overrides.batched.maxBatchSize;
  return merged;
}
