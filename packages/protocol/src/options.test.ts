import { describe, expect, it } from "vitest";
import { manifestProblem } from "./manifest.js";
import { closestName, optionsProblem } from "./options.js";

describe("option names", () => {
  it("suggests the nearest known name: a typo, another case, or one inside the other", () => {
    expect(closestName("memroy", ["cpu", "memory"])).toBe("memory");
    expect(closestName("MinContainers", ["minContainers"])).toBe("minContainers");
    expect(closestName("timeoutMs", ["timeout", "retries"])).toBe("timeout");
    expect(closestName("webEndpoint", ["cpu", "memory", "timeout"])).toBeUndefined();
  });

  it("refuses planned options as not supported yet, and others as unknown", () => {
    expect(optionsProblem('function "f"', { cpu: 1 }, ["cpu"])).toBeUndefined();
    expect(optionsProblem('function "f"', { gpu: "A10G" }, ["cpu"])).toBe(
      'function "f": option "gpu" is not supported yet (Skiff has no GPUs yet): remove it',
    );
    expect(optionsProblem('function "f"', { cpus: 2 }, ["cpu", "memory"])).toBe(
      'function "f": unknown option "cpus" (did you mean "cpu"?); known options: cpu, memory',
    );
  });

  it("words a manifest's problem by function and option, not by the field's path", () => {
    const fn = { name: "resize", kind: "function", gpu: "A10G" };
    expect(manifestProblem({ name: "a", functions: [fn] })).toMatch(
      /^function "resize": option "gpu" is not supported yet/,
    );
    const spec = { name: "m", kind: "class", cpu: "two" };
    expect(manifestProblem({ name: "a", functions: [spec] })).toMatch(/^class "m": option "(timeoutMs|cpu|retries)": /);
    expect(manifestProblem({ name: "a b", functions: [] })).toMatch(/^manifest name: app names use letters/);
  });
});
