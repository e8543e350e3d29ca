import { describe, expect, it } from "vitest";
import { decodePoolPart, poolBaseId, poolId, poolIdParts } from "./pool-id.js";

describe("pool ids", () => {
  it("read back what they encode", () => {
    const id = poolId("fu-1", { size: "large" }, { cpu: 2 });
    const parts = poolIdParts(id)!;
    expect(parts.baseId).toBe("fu-1");
    expect(decodePoolPart(parts.params!)).toEqual({ size: "large" });
    expect(decodePoolPart(parts.options!)).toEqual({ cpu: 2 });
    expect(poolBaseId(id)).toBe("fu-1");
  });

  it("leave out what is not there, and refuse more than three parts", () => {
    expect(poolIdParts("fu-1")).toEqual({ baseId: "fu-1", params: undefined, options: undefined });
    expect(poolIdParts(poolId("fu-1", {}, { cpu: 2 }))?.params).toBeUndefined();
    expect(poolIdParts("fu-1~a~b~c")).toBeUndefined();
    expect(poolBaseId("fu-1")).toBe("fu-1");
  });
});
