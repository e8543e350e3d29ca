import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { type ImageOnlyImport, imageOnlyStub, packageOf } from "./image-only.js";
import { installRoot } from "./paths.js";

export interface Bundle {
  /** ESM code with an inline source map whose sources are the user's files (absolute paths). */
  code: Uint8Array;
  hash: string;
  /** Where it was written locally. */
  path: string;
  /**
   * What the CLI imports to collect the app: the bundle itself, or, when the code imports packages that
   * are not installed here, a copy with stubs in their place (the image may install them).
   */
  collectPath: string;
  /** Packages imported at the top of a module that only the image can provide. */
  imageOnly: ImageOnlyImport[];
  /** The user's files it was made from (absolute paths, none under node_modules): what `skiff serve` watches. */
  inputs: string[];
}

/**
 * A mistake in the user's code or command, said without a stack. `next`, what to do about it after a one-off
 * command (`fix the code and run again`), ends the message; `problem` is the message without it, for `skiff
 * serve`'s reloads, which say their own (save again).
 */
export class UserCodeError extends Error {
  readonly problem: string;
  constructor(problem: string, options?: { cause?: unknown; next?: string }) {
    super(options?.next ? `${problem}\n${options.next}` : problem, options);
    this.name = "UserCodeError";
    this.problem = problem;
  }
}

/** Bundles the user's file with esbuild (ESM, Node target, source maps) into one uploadable file. */
export async function bundleFile(file: string, outDir: string): Promise<Bundle> {
  const entry = resolve(file);
  if (!existsSync(entry))
    throw new UserCodeError(`${file} does not exist: check the path (relative to ${process.cwd()})`);
  const imageOnly: ImageOnlyImport[] = [];
  const { code, inputs } = await build(entry, outDir, imageModules(imageOnly, false));
  const hash = createHash("sha256").update(code).digest("hex");
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, `${hash}.mjs`);
  await writeFile(path, code);
  if (imageOnly.length === 0) return { code, hash, path, collectPath: path, imageOnly, inputs };

  const collectPath = join(outDir, `${hash}.collect.mjs`);
  await writeFile(collectPath, (await build(entry, outDir, imageModules([], true))).code);
  return { code, hash, path, collectPath, imageOnly, inputs };
}

async function build(
  entry: string,
  outDir: string,
  plugin: esbuild.Plugin,
): Promise<{ code: Buffer; inputs: string[] }> {
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[]; metafile: esbuild.Metafile };
  try {
    result = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      sourcemap: "external",
      sourcesContent: false,
      write: false,
      metafile: true,
      outdir: outDir,
      logLevel: "silent",
      // Files outside this install still find the SDK.
      nodePaths: [join(installRoot(), "node_modules")],
      external: ["cbor-extract"],
      plugins: [plugin],
      // CommonJS dependencies call require(); give the ESM bundle one.
      banner: {
        js: "import { createRequire as __skiffCreateRequire } from 'node:module'; const require = __skiffCreateRequire(import.meta.url);",
      },
    });
  } catch (error) {
    const failure = error as esbuild.BuildFailure;
    const first = failure.errors?.[0];
    if (!first) throw error;
    const where = first.location ? `${first.location.file}:${first.location.line}:${first.location.column + 1}: ` : "";
    const problem = `${where}${first.text}\n  ${first.location?.lineText ?? ""}`;
    if (first.text.startsWith("Could not resolve")) {
      throw new UserCodeError(`${problem}\ninstall the package (npm install) or fix the import`, { cause: error });
    }
    throw new UserCodeError(problem, { cause: error, next: "fix the code and run again" });
  }
  const js = result.outputFiles.find((f) => f.path.endsWith(".js"))!;
  const map = result.outputFiles.find((f) => f.path.endsWith(".js.map"))!;
  const sourceMap = JSON.parse(map.text) as { sources: string[] };
  // Absolute sources: stack traces name the user's files wherever the bundle runs.
  sourceMap.sources = sourceMap.sources.map((source) => {
    const absolute = isAbsolute(source) ? source : resolve(dirname(js.path), source);
    return pathToFileURL(absolute).href;
  });
  const inlineMap = Buffer.from(JSON.stringify(sourceMap)).toString("base64");
  const code = Buffer.from(
    `${js.text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n")}//# sourceMappingURL=data:application/json;base64,${inlineMap}\n`,
  );
  // Metafile inputs are relative to the working directory; a plugin's own modules are `namespace:path`.
  const inputs = Object.keys(result.metafile.inputs)
    .filter((input) => !/^[\w-]+:/.test(input) && !/(^|[/\\])node_modules[/\\]/.test(input))
    .map((input) => resolve(input));
  return { code, inputs };
}

/** The user's file as the user named it, for messages. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), resolve(file));
  return rel.startsWith("..") ? resolve(file) : rel;
}

/**
 * Leaves bare imports that do not resolve here to be resolved in the container, where an image's
 * `npmInstall` puts packages (native modules among them) that the caller need not have installed.
 * The user's static ones are noted in `found`: the module needs them as soon as it loads, so with `stub` (the copy
 * the CLI imports to collect the app) each becomes a stand-in that accepts anything.
 */
function imageModules(found: ImageOnlyImport[], stub: boolean): esbuild.Plugin {
  return {
    name: "skiff-image-modules",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData?.skiffInner || args.path.startsWith("node:")) return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: { skiffInner: true },
        });
        // The SDK must be here: the CLI runs the app's code with it. Without it, esbuild's error says so.
        if (resolved.errors.length === 0 || packageOf(args.path) === "skiff") return undefined;
        // Dependencies' own misses are theirs to handle (ws tries require("bufferutil") and goes on without).
        const userStatic =
          (args.kind === "import-statement" || args.kind === "require-call") &&
          !/[/\\]node_modules[/\\]/.test(args.importer);
        if (!userStatic) return { path: args.path, external: true };
        found.push({ specifier: args.path, importer: args.importer });
        return stub ? { path: args.path, namespace: "skiff-image-only" } : { path: args.path, external: true };
      });
      build.onLoad({ filter: /.*/, namespace: "skiff-image-only" }, (args) => ({
        contents: imageOnlyStub(args.path),
        loader: "js",
      }));
    },
  };
}
