import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as esbuild from "esbuild";
import { afterEach, describe, expect, it } from "vitest";

const USER_CODE = `export class ValidationError extends Error {}
export function check(n: number): void {
  if (n > 1) {
    throw new ValidationError("bad input " + n); // line 4
  }
}
export async function later(n: number): Promise<void> {
  await Promise.resolve();
  check(n); // line 9
}
`;

// What the runner does, in a plain node process (vitest's own module loader would rewrite the bundle).
const DRIVER = `import { pathToFileURL } from "node:url";
import { mapStacksOf } from ${JSON.stringify(join(import.meta.dirname, "stack-map.ts"))};
const bundle = process.argv[2]!;
mapStacksOf(bundle);
const mod = await import(pathToFileURL(bundle).href);
const error = await Promise.resolve().then(() => mod[process.argv[3]!](42)).catch((e: Error) => e);
process.stdout.write(error.stack);
`;

describe("stack mapping in the runner", () => {
  let dir: string;
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const stackOf = async (userCode: string, entry: string, sourcemap: "inline" | false): Promise<string> => {
    dir = await mkdtemp(join(tmpdir(), "skiff-stack-"));
    await writeFile(join(dir, "user.ts"), userCode);
    await writeFile(join(dir, "driver.ts"), DRIVER);
    const common = { bundle: true, format: "esm", platform: "node" } as const;
    await esbuild.build({
      ...common,
      entryPoints: [join(dir, "user.ts")],
      outfile: join(dir, "bundle.mjs"),
      sourcemap,
    });
    await esbuild.build({ ...common, entryPoints: [join(dir, "driver.ts")], outfile: join(dir, "driver.mjs") });
    return execFileSync(process.execPath, [join(dir, "driver.mjs"), join(dir, "bundle.mjs"), entry]).toString();
  };

  it("points the bundle's frames at the user's .ts lines", async () => {
    const stack = await stackOf(USER_CODE, "later", "inline");
    expect(stack.split("\n")[0]).toBe("Error: bad input 42");
    expect(stack).toMatch(/at check \(.*user\.ts:4:\d+\)/);
    expect(stack).toMatch(/at later \(.*user\.ts:9:\d+\)/);
    expect(stack).not.toContain("bundle.mjs");
  });

  it("leaves a bundle without a source map, and other frames, as V8 prints them", async () => {
    const stack = await stackOf('export function boom(n: number) { throw new TypeError("no " + n); }\n', "boom", false);
    expect(stack.split("\n")[0]).toBe("TypeError: no 42");
    expect(stack).toMatch(/at (Module\.)?boom \(file:\/\/.*bundle\.mjs:\d+:\d+\)/);
    expect(stack).toMatch(/driver\.mjs:\d+:\d+/);
  });
});
