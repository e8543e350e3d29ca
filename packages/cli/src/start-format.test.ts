import { describe, expect, it } from "vitest";
import { formatPhases, formatStart } from "./start-format.js";

describe("a container's start, as `skiff container list` shows it", () => {
  const start = {
    kind: "booted" as const,
    phases: { load: 120, boot: 450, placement: 12, create: 80, prepare: 3, enter: 0 },
  };

  it("sums the phases in the START column, in seconds past 10 s", () => {
    expect(formatStart(start)).toBe("booted 665 ms");
    expect(formatStart({ kind: "restored", phases: { restore: 310 } })).toBe("restored 310 ms");
    expect(formatStart({ kind: "booted", phases: { prepare: 61_000, boot: 400 } })).toBe("booted 61.4 s");
    expect(formatStart(undefined)).toBe("-");
  });

  it("lists the phases in the order they happen, then the first input", () => {
    expect(formatPhases(start, 35)).toBe(
      "placement 12 ms · prepare 3 ms · create 80 ms · boot 450 ms · load 120 ms · enter 0 ms · first input done 35 ms after ready",
    );
    expect(formatPhases(start, undefined)).not.toContain("first input");
    expect(formatPhases(undefined, undefined)).toBe("no timings yet");
  });
});
