import { describe, expect, it } from "vitest";
import { batchesOf } from "./batches.js";

describe("batchesOf", () => {
  it("cuts items in order into batches of at most the limit, a larger item alone", () => {
    const sizes = [4, 4, 3, 10, 1, 1, 9];
    expect(batchesOf(sizes, (n) => n, 8)).toEqual([[4, 4], [3], [10], [1, 1], [9]]);
    expect(batchesOf([], (n: number) => n, 8)).toEqual([]);
    expect(batchesOf([0, 0, 0], (n) => n, 8)).toEqual([[0, 0, 0]]);
  });
});
