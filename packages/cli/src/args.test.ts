import { describe, expect, it } from "vitest";
import { parseFlags } from "./args.js";

describe("parseFlags", () => {
  it("types values and camel-cases names", () => {
    expect(parseFlags(["--n", "100", "--dry-run", "--no-color", "--name=x", "--list", "[1,2]"]).flags).toEqual({
      n: 100,
      dryRun: true,
      color: false,
      name: "x",
      list: [1, 2],
    });
  });

  it("keeps positional words and everything after --", () => {
    expect(parseFlags(["7", "--a", "1", "--", "--b", "x"])).toEqual({ flags: { a: 1 }, positional: [7, "--b", "x"] });
  });
});
