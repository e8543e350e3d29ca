import type { FunctionSpec } from "@skiff/protocol";

/** What the autoscaler samples of one pool: its scaling options and the inputs it holds. */
export interface PoolSample {
  spec: Pick<FunctionSpec, "maxInputs" | "targetInputs" | "maxContainers" | "bufferContainers">;
  /** The containers the pool keeps with no work (see minContainersOf). */
  minContainers: number;
  /** Its inputs waiting for a container and running in one; for a web pool, its requests waiting and in flight. */
  load: { pending: number; running: number };
}

/** How many inputs the autoscaler plans for each container of a pool to run at once. */
export function inputsPerContainer(spec: PoolSample["spec"]): number {
  return Math.min(spec.targetInputs ?? spec.maxInputs, spec.maxInputs);
}

/**
 * How many containers of its current version a pool wants: with work, clamp(ceil(work / inputs per
 * container) + buffer, min, max); with none, its minimum.
 */
export function desiredContainers(pool: PoolSample): number {
  const { spec, minContainers, load } = pool;
  const work = load.pending + load.running;
  if (work === 0) return minContainers;
  const wanted = Math.ceil(work / inputsPerContainer(spec)) + spec.bufferContainers;
  return Math.min(spec.maxContainers, Math.max(minContainers, wanted));
}
