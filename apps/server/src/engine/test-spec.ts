import type { FunctionSpec } from "@skiff/protocol";

/** A function spec for engine tests: one input per container, no retries, and `overrides`. */
export function testSpec(overrides: Partial<FunctionSpec> = {}): FunctionSpec {
  return {
    name: "f",
    kind: "function",
    timeoutMs: 30_000,
    startupTimeoutMs: 60_000,
    retries: { maxRetries: 0, initialDelayMs: 0, backoffCoefficient: 1, maxDelayMs: 0 },
    cpu: 1,
    memoryMiB: 512,
    image: { base: "debian-bookworm", nodeMajor: 20, layers: [], mounts: [] },
    minContainers: 0,
    maxContainers: 1,
    bufferContainers: 0,
    scaledownWindowMs: 60_000,
    maxInputs: 1,
    secrets: [],
    ...overrides,
  };
}
