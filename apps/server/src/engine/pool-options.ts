import { decodePoolPart, type FunctionSpec, type PoolIdParts, poolIdParts, SpecOverrides } from "@skiff/protocol";
import { ApiError } from "../errors.js";

/** Splits `BASE[~PARAMS[~OPTIONS]]` (see poolId); undefined for a plain function id. */
export function splitPoolId(poolId: string): PoolIdParts | undefined {
  const parts = poolIdParts(poolId);
  if (!parts) throw new ApiError("BAD_REQUEST", `pool id ${poolId} is not valid`);
  return parts.baseId === poolId ? undefined : parts;
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
    value = decodePoolPart(encoded);
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
