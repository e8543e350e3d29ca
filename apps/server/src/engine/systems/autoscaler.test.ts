import { describe, expect, it } from "vitest";
import { desiredContainers, inputsPerContainer, type PoolSample } from "./autoscaler.js";

const spec = { maxInputs: 1, targetInputs: undefined, maxContainers: 10, bufferContainers: 0 };
const pool = (overrides: Partial<PoolSample> = {}): PoolSample => ({
  spec,
  minContainers: 0,
  load: { pending: 0, running: 0 },
  ...overrides,
});

describe("desiredContainers", () => {
  it("keeps a pool's minimum when it has no work", () => {
    expect(desiredContainers(pool())).toBe(0);
    expect(desiredContainers(pool({ minContainers: 2 }))).toBe(2);
  });

  it("wants one container per input a container runs at once, waiting and running alike", () => {
    expect(desiredContainers(pool({ load: { pending: 3, running: 2 } }))).toBe(5);
    const concurrent = { ...spec, maxInputs: 4 };
    expect(desiredContainers(pool({ spec: concurrent, load: { pending: 5, running: 0 } }))).toBe(2);
  });

  it("plans for targetInputs per container, never more than maxInputs", () => {
    expect(inputsPerContainer({ ...spec, maxInputs: 8, targetInputs: 2 })).toBe(2);
    expect(inputsPerContainer({ ...spec, maxInputs: 4, targetInputs: 16 })).toBe(4);
    const targeted = { ...spec, maxInputs: 8, targetInputs: 2 };
    expect(desiredContainers(pool({ spec: targeted, load: { pending: 7, running: 0 } }))).toBe(4);
  });

  it("adds the buffer to a pool with work, within its maximum", () => {
    const buffered = { ...spec, bufferContainers: 2 };
    expect(desiredContainers(pool({ spec: buffered, load: { pending: 1, running: 0 } }))).toBe(3);
    expect(desiredContainers(pool({ spec: buffered, load: { pending: 9, running: 0 } }))).toBe(10);
    expect(desiredContainers(pool({ spec: buffered }))).toBe(0);
  });

  it("never goes below the minimum with work, nor above the maximum", () => {
    expect(desiredContainers(pool({ minContainers: 3, load: { pending: 1, running: 0 } }))).toBe(3);
    expect(desiredContainers(pool({ load: { pending: 50, running: 0 } }))).toBe(10);
  });

  it("takes a web pool's requests as its load: waiting ones as pending, those in flight as running", () => {
    const web = { ...spec, maxInputs: 4 };
    // Scale from zero: one request waiting wants one container.
    expect(desiredContainers(pool({ spec: web, load: { pending: 1, running: 0 } }))).toBe(1);
    expect(desiredContainers(pool({ spec: web, load: { pending: 3, running: 6 } }))).toBe(3);
    expect(desiredContainers(pool({ spec: web, load: { pending: 0, running: 0 } }))).toBe(0);
  });
});
