import { describe, expect, it } from "vitest";
import { coldStartMs, isStartPhases, orderedPhases, StartPhases } from "./cold-start.js";

describe("cold starts", () => {
  it("orders phases as they happen, unknown ones last in the order they came", () => {
    const phases = { load: 120, boot: 400, custom: 3, placement: 12, prepare: 5, other: 1 };
    expect(orderedPhases(phases).map(([name]) => name)).toEqual([
      "placement",
      "prepare",
      "boot",
      "load",
      "custom",
      "other",
    ]);
  });

  it("adds the phases up to the whole start", () => {
    expect(coldStartMs({ kind: "booted", phases: { placement: 12, boot: 400, load: 120 } })).toBe(532);
    expect(coldStartMs({ kind: "restored", phases: {} })).toBe(0);
  });

  it("isStartPhases accepts exactly what StartPhases accepts", () => {
    const samples: unknown[] = [{}, { load: 1 }, { load: 0, enter: 3 }, { load: -1 }, { load: 0.5 }, { load: "1" }];
    for (const sample of [...samples, null, [], [1], "x", 3]) {
      expect(isStartPhases(sample), JSON.stringify(sample)).toBe(StartPhases.safeParse(sample).success);
    }
  });
});
