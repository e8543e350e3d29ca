import { describe, expect, it } from "vitest";
import { toFunctionSpec } from "./function-spec.js";

describe("toFunctionSpec", () => {
  it("fills defaults and normalizes friendly units", () => {
    const spec = toFunctionSpec("f", { timeout: "2m", memory: "2GiB", retries: 3, scaledownWindow: 5 }, 20);
    expect(spec).toMatchObject({
      timeoutMs: 120_000,
      memoryMiB: 2048,
      retries: { maxRetries: 3, initialDelayMs: 1000, backoffCoefficient: 2, maxDelayMs: 60_000 },
      scaledownWindowMs: 5000,
      maxInputs: 1,
      cpu: 1,
      image: { base: "debian-bookworm", nodeMajor: 20, layers: [], mounts: [] },
    });
  });

  it("refuses bad values with a message that names the option and the fix", () => {
    expect(() => toFunctionSpec("f", { timeout: "ten minutes" }, 20)).toThrow(
      /function "f": timeout "ten minutes" is not a duration: use seconds \(30\) or a string like "500ms"/,
    );
    expect(() => toFunctionSpec("f", { memory: "lots" }, 20)).toThrow(/function "f": memory "lots" is not a size/);
    expect(() => toFunctionSpec("f", { minContainers: 5, maxContainers: 2 }, 20)).toThrow(
      /maxContainers \(2\) must be at least minContainers \(5\)/,
    );
    expect(() => toFunctionSpec("f", { retries: 1.5 }, 20)).toThrow(/retries must be a whole number from 0 to 100/);
  });
});
