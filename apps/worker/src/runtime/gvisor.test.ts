import { describe, expect, it } from "vitest";
import { runscReleaseDate } from "./gvisor.js";

describe("runscReleaseDate", () => {
  it("reads the date of upstream and Debian builds, and none of a build without one", () => {
    expect(runscReleaseDate("runsc version release-20240729.0\nspec: 1.1.0\n")).toBe(20240729);
    expect(runscReleaseDate("runsc version 0.0~20221219.0\nspec: 1.0.2-dev\n")).toBe(20221219);
    expect(runscReleaseDate("runsc version VERSION_MISSING\nspec: 1.1.0\n")).toBeUndefined();
  });
});
