import { describe, expect, it } from "vitest";
import { formatLogLine } from "./log-format.js";

describe("formatLogLine", () => {
  it("prints time, level, message and the other fields", () => {
    const line = formatLogLine(
      JSON.stringify({ level: 40, time: 0, pid: 1, hostname: "h", msg: "worker disconnected", worker: "vm" }),
    );
    expect(line).toMatch(/^\d\d:\d\d:\d\d warn {2}worker disconnected worker=vm$/);
  });

  it("passes through what is not JSON", () => {
    expect(formatLogLine("plain text")).toBe("plain text");
  });
});
