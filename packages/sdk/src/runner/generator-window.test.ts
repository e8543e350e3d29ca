import { describe, expect, it } from "vitest";
import { GeneratorWindow } from "./generator-window.js";

describe("GeneratorWindow", () => {
  it("is full at its count of values the caller has not taken, and opens as credit comes", () => {
    const window = new GeneratorWindow(4, 1000);
    for (let i = 0; i < 3; i++) window.add(1);
    expect(window.full).toBe(false);
    window.add(1);
    expect(window.full).toBe(true);
    window.credit(1);
    expect(window.full).toBe(false);
    window.credit(0); // an older credit changes nothing
    window.add(1);
    expect(window.full).toBe(true);
  });

  it("is full at its bytes of values not taken, whatever their count", () => {
    const window = new GeneratorWindow(64, 100);
    window.add(60);
    window.add(0); // a blob
    expect(window.full).toBe(false);
    window.add(40);
    expect(window.full).toBe(true);
    window.credit(1); // the 60 bytes were taken
    expect(window.full).toBe(false);
    window.credit(99); // more than was sent: only what was sent counts
    window.add(99);
    expect(window.full).toBe(false);
  });
});
