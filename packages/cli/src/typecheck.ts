import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

/** What `skiff deploy` learned by type-checking the file. */
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
