import type { LogLine } from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import { RecentLogs } from "./recent-logs.js";

const line = (containerId: string, seq: number | undefined, appId = "app"): LogLine => ({
  ts: 0,
  appId,
  functionName: "f",
  containerId,
  stream: "stdout",
  line: `${containerId}-${seq}`,
  ...(seq === undefined ? {} : { seq }),
});

const texts = (lines: LogLine[]) => lines.map((l) => l.line);

describe("RecentLogs", () => {
  it("drops lines it already has, by container and number", () => {
    const logs = new RecentLogs();
    expect(texts(logs.add([line("a", 1), line("a", 2), line("b", 1)], 0))).toEqual(["a-1", "a-2", "b-1"]);
    // A worker resends a batch the server had not acknowledged, with a new line after it.
    expect(texts(logs.add([line("a", 2), line("a", 3), line("b", 1)], 1))).toEqual(["a-3"]);
    // Lines without a number (an older worker) always pass.
    expect(texts(logs.add([line("c", undefined), line("c", undefined)], 2))).toEqual(["c-undefined", "c-undefined"]);
  });

  it("keeps each app's lines of the last minute for a watcher that reconnects", () => {
    const logs = new RecentLogs();
    logs.add([line("a", 1)], 0);
    logs.add([line("a", 2), line("x", 1, "other")], 30_000);
    expect(texts(logs.of("app", 30_000))).toEqual(["a-1", "a-2"]);
    expect(texts(logs.of("app", 61_000))).toEqual(["a-2"]);
    expect(texts(logs.of("other", 61_000))).toEqual(["x-1"]);
    expect(logs.of("app", 200_000)).toEqual([]);
  });
});
