import { describe, expect, it } from "vitest";
import { poolOverrides, splitPoolId, withOverrides } from "./pool-options.js";
import { testSpec } from "./test-spec.js";

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("pool ids", () => {
  it("split into the function, a class's parameters and a variant's options", () => {
    expect(splitPoolId("fu-1")).toBeUndefined();
    expect(splitPoolId("fu-1~abc")).toEqual({ baseId: "fu-1", params: "abc", options: undefined });
    expect(splitPoolId("fu-1~~xyz")).toEqual({ baseId: "fu-1", params: undefined, options: "xyz" });
    expect(() => splitPoolId("fu-1~a~b~c")).toThrow(/not valid/);
  });

  it("a variant's options apply on top of the function's spec", () => {
    const spec = testSpec({ name: "resize", maxContainers: 4, targetInputs: 2, maxInputs: 4 });
    const overrides = poolOverrides(spec, encode({ memoryMiB: 2048, maxInputs: 8 }));
    const merged = withOverrides(spec, overrides);
    expect(merged).toMatchObject({ memoryMiB: 2048, maxInputs: 8 });
    expect(merged).not.toHaveProperty("targetInputs");
    expect(spec.memoryMiB).toBe(512);
  });

  it("refuses options a variant cannot have, naming the function and the option", () => {
    const spec = testSpec({ name: "resize", maxContainers: 2 });
    expect(() => poolOverrides(spec, encode({ gpu: "A10G" }))).toThrow(
      /^function "resize": withOptions: option "gpu" cannot be changed by withOptions/,
    );
    expect(() => poolOverrides(spec, encode({ memoryMiB: 16 }))).toThrow(
      /function "resize": withOptions: option "memoryMiB": memory must be at least 64 MiB/,
    );
    expect(() => poolOverrides(spec, encode({ minContainers: 5 }))).toThrow(
      /maxContainers \(2\) must be at least minContainers \(5\)/,
    );
    expect(() => poolOverrides(spec, "%%%")).toThrow(/not valid JSON/);
  });
});
