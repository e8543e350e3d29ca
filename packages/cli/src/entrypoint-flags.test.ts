import { describe, expect, it } from "vitest";
import { entrypointFlags, flagName, unknownFlags } from "./entrypoint-flags.js";

describe("entrypointFlags", () => {
  it("reads the keys a parameter destructures, defaults and renames included", () => {
    expect(entrypointFlags(async ({ n = 10, dryRun }: { n?: number; dryRun?: boolean }) => [n, dryRun])).toEqual([
      "n",
      "dryRun",
    ]);
    const tricky = ({ list = [1, 2], s = "a,}b", o = { a: 1, b: 2 }, name: alias = "x" }) => [list, s, o, alias];
    expect(entrypointFlags(tricky as never)).toEqual(["list", "s", "o", "name"]);
    expect(
      entrypointFlags(async function main({ n }: { n: number }) {
        return n;
      }),
    ).toEqual(["n"]);
  });

  it("knows an entrypoint with no parameter takes no flag, and does not guess past a plain or rest one", () => {
    expect(entrypointFlags(async () => 1)).toEqual([]);
    expect(entrypointFlags((args: object) => args)).toBeUndefined();
    expect(entrypointFlags(((args: object) => args) as never)).toBeUndefined();
    expect(entrypointFlags(({ n, ...rest }: { n: number }) => [n, rest])).toBeUndefined();
  });
});

describe("unknownFlags", () => {
  it("names the flags given that the entrypoint lacks, and the ones it has", () => {
    expect(unknownFlags({ n: 3 }, ["n", "dryRun"], "app.ts::main")).toBeUndefined();
    expect(unknownFlags({ bogusFlag: 3 }, ["n", "dryRun"], "app.ts::main")).toBe(
      "app.ts::main has no flag --bogus-flag: its flags are --n, --dry-run (the keys its parameter destructures)",
    );
    expect(unknownFlags({ x: 1 }, [], "app.ts::main")).toMatch(/has no flag --x: it takes no flags/);
    expect(unknownFlags({ anything: 1 }, undefined, "app.ts::main")).toBeUndefined();
    expect(flagName("dryRun")).toBe("--dry-run");
  });
});
