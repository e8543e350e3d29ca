import { describe, expect, it } from "vitest";
import { formatPeriod } from "./period-format.js";

describe("formatPeriod", () => {
  it("writes a period in its largest units", () => {
    expect(formatPeriod(7 * 86_400_000)).toBe("7d");
    expect(formatPeriod(5_400_000)).toBe("1h30m");
    expect(formatPeriod(1000)).toBe("1s");
    expect(formatPeriod(90_000)).toBe("1m30s");
    expect(formatPeriod(86_400_000 + 1000)).toBe("1d1s");
    expect(formatPeriod(1500)).toBe("1s500ms");
  });
});
