import { describe, expect, it } from "vitest";
import { groupBy } from "./group-by.js";

describe("groupBy", () => {
  it("groups by key and keeps order within a group", () => {
    const groups = groupBy(["a1", "b1", "a2", "b2", "c1"], (s) => s[0]);
    expect([...groups.entries()]).toEqual([
      ["a", ["a1", "a2"]],
      ["b", ["b1", "b2"]],
      ["c", ["c1"]],
    ]);
  });
});
