import { readFileSync } from "node:fs";
import type { ImageSpec } from "@skiff/protocol";

/** A bare import, at the top of a module, of a package that is not installed where the CLI runs. */
export interface ImageOnlyImport {
  specifier: string;
  /** The absolute path of the module that imports it. */
  importer: string;
}

/** Set on globalThis while the CLI imports the user's module to collect the app. */
export const COLLECTING = Symbol.for("skiff.collecting");

/**
 * What such an import gets while the CLI collects the app: a CommonJS module that is any value (callable,
 * constructible, every property another stand-in), so that top-level code referring to it loads. It is
 * never a thenable, so that awaiting it does not hang. Called after collection (in a local entrypoint, or
 * `.local()`), it throws: the package exists only in the container.
 */
export function imageOnlyStub(specifier: string): string {
  const message = `"${packageOf(specifier)}" is installed only in the image, so it cannot run on this machine (a local entrypoint or .local()): install it here too (npm install ${packageOf(specifier)}) or call it in a function`;
  return `
const collecting = () => globalThis[Symbol.for("skiff.collecting")] === true;
const use = () => {
  if (!collecting()) throw new Error(${JSON.stringify(message)});
  return stub;
};
const handler = {
  get: (_target, key) => (key === "then" || key === "__esModule" ? undefined : key === Symbol.toPrimitive ? () => "" : stub),
  getPrototypeOf: () => stub,
  apply: use,
  construct: use,
};
const stub = new Proxy(function skiffImageOnly() {}, handler);
module.exports = stub;
`;
}

/** The package an import names: `lodash/fp` → `lodash`, `@scope/pkg/sub` → `@scope/pkg`. */
export function packageOf(specifier: string): string {
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** The package an `npmInstall` argument installs: `sharp@0.33` → `sharp`, `@scope/pkg@^1` → `@scope/pkg`. */
export function installedName(spec: string): string {
  const at = spec.indexOf("@", 1);
  return at < 0 ? spec : spec.slice(0, at);
}

/**
 * The first import that no image provides, as the user should read it (file, line, and both fixes), or
 * undefined. An image on a registry base, or one whose commands mention the package, may provide it.
 */
export function missingPackage(
  imports: ImageOnlyImport[],
  images: ImageSpec[],
  display: (file: string) => string,
): string | undefined {
  for (const found of imports) {
    const name = packageOf(found.specifier);
    const provided = images.some(
      (image) =>
        typeof image.base !== "string" ||
        image.layers.some(({ step }) =>
          step.kind === "npm"
            ? step.packages.some((spec) => installedName(spec) === name)
            : step.kind === "run" && step.commands.some((command) => command.includes(name)),
        ),
    );
    if (provided) continue;
    return `${display(found.importer)}:${lineOf(found)}: cannot find package "${name}": add it to your project (npm install ${name}) or to the image (.npmInstall("${name}"))`;
  }
  return undefined;
}

/** The line of the import (1-based), found by its quoted specifier; 1 when the file cannot be read. */
function lineOf(found: ImageOnlyImport): number {
  let lines: string[];
  try {
    lines = readFileSync(found.importer, "utf8").split("\n");
  } catch {
    return 1;
  }
  const quoted = [`"${found.specifier}"`, `'${found.specifier}'`, `\`${found.specifier}\``];
  const index = lines.findIndex((line) => quoted.some((q) => line.includes(q)));
  return index + 1 || 1;
}
