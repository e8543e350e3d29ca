import type { LogLine } from "@skiff/protocol";
import { describe, expect, it } from "vitest";
import { LOG_BATCH_CHARS, LogShipper } from "./log-shipper.js";

const line = (containerId: string, text: string): LogLine => ({
  ts: 0,
  appId: "app",
  functionName: "f",
  containerId,
  stream: "stdout",
  line: text,
});

const texts = (lines: LogLine[] | undefined) => (lines ?? []).map((l) => `${l.containerId}:${l.seq}:${l.line}`);

describe("LogShipper", () => {
  it("numbers each container's lines and keeps batches until the server acknowledges them", () => {
    const shipper = new LogShipper(100);
    shipper.push(line("a", "one"));
    shipper.push(line("b", "uno"));
    shipper.push(line("a", "two"));
    const [first] = shipper.take();
    expect(first?.seq).toBe(1);
    expect(texts(first?.lines)).toEqual(["a:1:one", "b:1:uno", "a:2:two"]);
    expect(shipper.take()).toEqual([]);
    shipper.push(line("a", "three"));
    const [second] = shipper.take();
    expect(second?.seq).toBe(2);

    // The connection dropped before either was acknowledged: both go again, in order.
    expect(shipper.unacknowledgedBatches().map((b) => b.seq)).toEqual([1, 2]);
    shipper.acknowledged(1);
    expect(shipper.unacknowledgedBatches().map((b) => [b.seq, texts(b.lines)])).toEqual([[2, ["a:3:three"]]]);
    shipper.acknowledged(2);
    expect(shipper.unacknowledgedBatches()).toEqual([]);
  });

  it("drops the oldest lines past its bound while the server is away, and counts them", () => {
    const shipper = new LogShipper(3);
    shipper.push(line("a", "1"));
    shipper.push(line("a", "2"));
    shipper.take(); // sent, never acknowledged
    shipper.push(line("a", "3"));
    shipper.push(line("a", "4"));
    shipper.push(line("a", "5"));
    expect(shipper.takeDropped()).toBe(2);
    expect(shipper.takeDropped()).toBe(0);
    expect(shipper.unacknowledgedBatches().map((b) => texts(b.lines))).toEqual([]);
    expect(texts(shipper.take()[0]?.lines)).toEqual(["a:3:3", "a:4:4", "a:5:5"]);
  });

  it("keeps each batch to LOG_BATCH_CHARS of text, in order, so a chatty container never makes a huge message", () => {
    const shipper = new LogShipper(10_000);
    const text = "z".repeat(16 * 1024);
    for (let i = 0; i < 200; i++) shipper.push(line("a", text));
    const batches = [];
    batches.push(...shipper.take());
    expect(batches.length).toBeGreaterThan(1);
    for (const batch of batches) {
      expect(batch.lines.reduce((sum, l) => sum + l.line.length, 0)).toBeLessThanOrEqual(LOG_BATCH_CHARS);
    }
    expect(batches.flatMap((b) => b.lines.map((l) => l.seq))).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
  });

  it("bounds the text it keeps as well as the lines", () => {
    const shipper = new LogShipper(1_000, 10);
    for (const text of ["aaaa", "bbbb", "cccc", "dd"]) shipper.push(line("a", text));
    expect(shipper.takeDropped()).toBe(1);
    expect(texts(shipper.take()[0]?.lines)).toEqual(["a:2:bbbb", "a:3:cccc", "a:4:dd"]);
    shipper.acknowledged(1);
    for (const text of ["eeeee", "fffff"]) shipper.push(line("a", text));
    expect(shipper.takeDropped()).toBe(0);
  });
});
