import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { UserCodeError } from "./bundle.js";
import { refuseTypeErrors, typecheckFile } from "./typecheck.js";

const ROOT = resolve(import.meta.dirname, "../../..");
const dir = mkdtempSync(join(tmpdir(), "skiff-typecheck-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A project in a new directory: its files, and optionally the repository's typescript installed in it. */
function project(name: string, files: Record<string, string>, withTypescript: boolean): string {
  const at = join(dir, name);
  mkdirSync(join(at, "node_modules"), { recursive: true });
  for (const [file, text] of Object.entries(files)) writeFileSync(join(at, file), text);
  if (withTypescript) symlinkSync(join(ROOT, "node_modules/typescript"), join(at, "node_modules/typescript"));
  return at;
}

const TSCONFIG = JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: "ES2022" } });

describe("typecheckFile", () => {
  it("reports the errors of the file and what it imports, as file(line,col)", async () => {
    const at = project(
      "bad",
      {
        "tsconfig.json": TSCONFIG,
        "app.ts": 'import { twice } from "./lib";\nexport const n: number = twice("2");\n',
        "lib.ts": "export const twice = (x: number): string => x * 2;\n",
      },
      true,
    );
    const result = await typecheckFile(join(at, "app.ts"));
    expect(result.kind).toBe("failed");
    const report = result.kind === "failed" ? result.report : "";
    expect(report).toMatch(/app\.ts\(2,\d+\): error TS2345/);
    expect(report).toMatch(/lib\.ts\(1,\d+\): error TS2322/);
  });

  it("passes a file that type-checks, with the project's TypeScript", async () => {
    const at = project("good", { "tsconfig.json": TSCONFIG, "app.ts": "export const n: number = 2;\n" }, true);
    expect(await typecheckFile(join(at, "app.ts"))).toMatchObject({ kind: "passed", version: /^5\./ });
  });

  it("says why it did not check: no tsconfig.json, or no typescript in the project", async () => {
    const none = project("plain", { "app.ts": "export const n: number = '2';\n" }, false);
    // tmpdir has no tsconfig.json above it
    expect(await typecheckFile(join(none, "app.ts"))).toEqual({
      kind: "skipped",
      reason: "no tsconfig.json at or above the file",
    });
    const noTs = project("no-ts", { "tsconfig.json": TSCONFIG, "app.ts": "export const n = 2;\n" }, false);
    const result = await typecheckFile(join(noTs, "app.ts"));
    expect(result.kind === "skipped" && result.reason).toMatch(
      /typescript is not installed .*npm install -D typescript/,
    );
  });

  it("runs the project's tsc when its typescript has no compiler API (TypeScript 7 and later)", async () => {
    // A stand-in for TypeScript 7's package: its entry exports the version only, its tsc is a program.
    const at = project("ts7", { "tsconfig.json": TSCONFIG, "app.ts": "export const n: number = '2';\n" }, false);
    const ts = join(at, "node_modules/typescript");
    mkdirSync(join(ts, "bin"), { recursive: true });
    writeFileSync(
      join(ts, "package.json"),
      JSON.stringify({ name: "typescript", version: "7.0.2", main: "./version.cjs", bin: { tsc: "./bin/tsc" } }),
    );
    writeFileSync(join(ts, "version.cjs"), 'module.exports = { version: "7.0.2" };\n');
    writeFileSync(
      join(ts, "bin/tsc"),
      'const args = process.argv.slice(2).join(" ");\n' +
        'if (!args.startsWith("--noEmit --pretty false -p ")) { console.log("bad args " + args); process.exit(2); }\n' +
        "console.log(\"app.ts(1,14): error TS2322: Type 'string' is not assignable to type 'number'.\");\n" +
        "process.exit(2);\n",
    );
    const result = await typecheckFile(join(at, "app.ts"));
    expect(result).toMatchObject({ kind: "failed", report: expect.stringMatching(/^app\.ts\(1,14\): error TS2322/) });
  });
});

describe("refuseTypeErrors", () => {
  const said = () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    return { lines, restore: () => spy.mockRestore() };
  };

  it("throws the compiler's report, then what did not happen and how to go on", async () => {
    const at = project("refused", { "tsconfig.json": TSCONFIG, "app.ts": "export const n: number = '2';\n" }, true);
    const refused = refuseTypeErrors(join(at, "app.ts"), { refused: "not served: fix the types" });
    await expect(refused).rejects.toBeInstanceOf(UserCodeError);
    await expect(refused).rejects.toThrow(
      /app\.ts does not type-check \(under .*tsconfig\.json\):\n.*app\.ts\(1,14\): error TS2322[\s\S]*\nnot served: fix the types$/,
    );
  });

  it("says how a file was checked, or why it was not, unless quiet", async () => {
    const good = project("said", { "tsconfig.json": TSCONFIG, "app.ts": "export const n = 2;\n" }, true);
    const plain = project("said-plain", { "app.ts": "export const n: number = '2';\n" }, false);
    const output = said();
    try {
      await refuseTypeErrors(join(good, "app.ts"));
      await refuseTypeErrors(join(plain, "app.ts"));
      await refuseTypeErrors(join(good, "app.ts"), { quiet: true });
      await refuseTypeErrors(join(plain, "app.ts"), { quiet: true });
    } finally {
      output.restore();
    }
    expect(output.lines).toHaveLength(2);
    expect(output.lines[0]).toMatch(/type-checked with TypeScript 5\.\d+\.\d+ \(.*tsconfig\.json\)/);
    expect(output.lines[1]).toContain("not type-checked: no tsconfig.json at or above the file");
  });
});
