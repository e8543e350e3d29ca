import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { displayPath, UserCodeError } from "./bundle.js";
import { dim, say, yellow } from "./output.js";

/** What type-checking a file under its tsconfig.json learned. */
export type TypecheckResult =
  | { kind: "passed"; tsconfig: string; version: string }
  | { kind: "failed"; tsconfig: string; report: string }
  /** Not checked, and why (no tsconfig.json, or no typescript installed in the project). */
  | { kind: "skipped"; reason: string };

/** The nearest tsconfig.json at or above `dir`. */
export function findTsconfig(dir: string): string | undefined {
  for (let at = resolve(dir); ; at = dirname(at)) {
    if (existsSync(join(at, "tsconfig.json"))) return join(at, "tsconfig.json");
    if (dirname(at) === at) return undefined;
  }
}

/**
 * Type-checks `file` and what it imports under the nearest tsconfig.json, with the TypeScript installed
 * in that project: the version and settings the user's editor uses, not one of Skiff's.
 */
export async function typecheckFile(file: string): Promise<TypecheckResult> {
  const entry = resolve(file);
  const tsconfig = findTsconfig(dirname(entry));
  if (!tsconfig) return { kind: "skipped", reason: "no tsconfig.json at or above the file" };
  let path: string;
  try {
    path = createRequire(tsconfig).resolve("typescript");
  } catch {
    return {
      kind: "skipped",
      reason: `typescript is not installed in the project of ${tsconfig} (npm install -D typescript)`,
    };
  }
  const ts = ((await import(pathToFileURL(path).href)) as { default: typeof import("typescript") }).default;
  // TypeScript 7 and later (the native compiler) export no compiler API from the package: run its tsc.
  if (typeof ts?.createProgram !== "function") return typecheckWithTsc(path, tsconfig);
  const host = {
    getCanonicalFileName: (name: string) => name,
    getCurrentDirectory: () => process.cwd(),
    getNewLine: () => "\n",
  };
  const read = ts.readConfigFile(tsconfig, ts.sys.readFile);
  if (read.error) return { kind: "failed", tsconfig, report: ts.formatDiagnostics([read.error], host) };
  const parsed = ts.parseJsonConfigFileContent(read.config, ts.sys, dirname(tsconfig), undefined, tsconfig);
  const program = ts.createProgram({ rootNames: [entry], options: { ...parsed.options, noEmit: true } });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length === 0) return { kind: "passed", tsconfig, version: ts.version };
  return { kind: "failed", tsconfig, report: ts.formatDiagnostics(diagnostics, host).trimEnd() };
}

/**
 * The type check `skiff deploy` and `skiff serve` make before they go on: a file that does not type-check
 * throws a UserCodeError with the compiler's report, then `refused` (what did not happen and how to go on).
 * Otherwise it says which TypeScript checked it, or why it could not be checked, unless `quiet` (a reload
 * says nothing while all is well).
 */
export async function refuseTypeErrors(
  file: string,
  options: { refused?: string; quiet?: boolean } = {},
): Promise<void> {
  const checked = await typecheckFile(file);
  if (checked.kind === "failed") {
    const then = options.refused ? `\n${options.refused}` : "";
    throw new UserCodeError(
      `${displayPath(file)} does not type-check (under ${displayPath(checked.tsconfig)}):\n${checked.report}${then}`,
    );
  }
  if (options.quiet) return;
  if (checked.kind === "skipped") say(yellow(`not type-checked: ${checked.reason}`));
  else say(dim(`type-checked with TypeScript ${checked.version} (${displayPath(checked.tsconfig)})`));
}

/**
 * Type-checks the whole project of `tsconfig` with the project's own `tsc` (for TypeScript versions whose
 * package has no compiler API); `resolved` is where `typescript` resolved from the project.
 */
async function typecheckWithTsc(resolved: string, tsconfig: string): Promise<TypecheckResult> {
  let dir = dirname(resolved);
  while (!existsSync(join(dir, "package.json")) && dirname(dir) !== dir) dir = dirname(dir);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
    version?: string;
    bin?: string | Record<string, string>;
  };
  const bin = typeof pkg.bin === "string" ? pkg.bin : pkg.bin?.tsc;
  if (!bin) return { kind: "skipped", reason: `typescript ${pkg.version ?? "?"} in ${dir} has no tsc to run` };
  const args = [join(dir, bin), "--noEmit", "--pretty", "false", "-p", tsconfig];
  const outcome = await new Promise<{ code: number; output: string }>((resolveRun) => {
    execFile(
      process.execPath,
      args,
      { cwd: dirname(tsconfig), maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolveRun({ code, output: `${stdout}${stderr}`.trimEnd() });
      },
    );
  });
  if (outcome.code === 0) return { kind: "passed", tsconfig, version: pkg.version ?? "?" };
  return { kind: "failed", tsconfig, report: outcome.output || `tsc exited with status ${outcome.code}` };
}
