import { describe, expect, it } from "vitest";
import { parseDuration, parseSize } from "./units.js";

describe("parseSize", () => {
  it("reads MiB, binary and decimal units, with or without the B", () => {
    expect(parseSize(512)).toBe(512);
    expect(parseSize("4GiB")).toBe(4096);
    expect(parseSize("4Gi")).toBe(4096);
    expect(parseSize("512Mi")).toBe(512);
    expect(parseSize("512mib")).toBe(512);
    expect(parseSize("2G")).toBeCloseTo(2_000_000_000 / 2 ** 20);
    expect(parseSize("2GB")).toBeCloseTo(2_000_000_000 / 2 ** 20);
    expect(parseSize("200M")).toBeCloseTo(200_000_000 / 2 ** 20);
    expect(parseSize("1048576B")).toBe(1);
  });

  it("refuses what is not a size, saying how to write one", () => {
    expect(() => parseSize("lots")).toThrow(/"lots" is not a size: use MiB \(512\) or a string like "512MiB", "4GiB"/);
    expect(() => parseSize("4TiB")).toThrow(/not a size/);
    expect(() => parseSize(0)).toThrow(/positive number of MiB/);
  });
});

describe("parseDuration", () => {
  it("reads seconds and friendly strings", () => {
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration("10m")).toBe(600_000);
    expect(() => parseDuration("soon")).toThrow(/not a duration/);
  });
});
