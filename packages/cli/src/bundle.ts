import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as esbuild from "esbuild";
import { installRoot } from "./paths.js";

export interface Bundle {
  /** ESM code with an inline source map whose sources are the user's files (absolute paths). */
  code: Uint8Array;
  hash: string;
  /** Where it was written locally, to import it. */
  path: string;
}

export class UserCodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UserCodeError";
  }
}

/** Bundles the user's file with esbuild (ESM, Node target, source maps) into one uploadable file. */
export async function bundleFile(file: string, outDir: string): Promise<Bundle> {
  const entry = resolve(file);
  if (!existsSync(entry))
    throw new UserCodeError(`${file} does not exist: check the path (relative to ${process.cwd()})`);
  let result: esbuild.BuildResult & { outputFiles: esbuild.OutputFile[] };
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
      outdir: outDir,
      logLevel: "silent",
      // Files outside this install still find the SDK.
      nodePaths: [join(installRoot(), "node_modules")],
      external: ["cbor-extract"],
      plugins: [imageModules],
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
    const hint = first.text.startsWith("Could not resolve")
      ? "install the package (npm install) or fix the import"
      : "fix the code and run again";
    throw new UserCodeError(`${where}${first.text}\n  ${first.location?.lineText ?? ""}\n${hint}`, { cause: error });
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
  const hash = createHash("sha256").update(code).digest("hex");
  await mkdir(outDir, { recursive: true });
  const path = join(outDir, `${hash}.mjs`);
  await writeFile(path, code);
  return { code, hash, path };
}

/** The user's file as the user named it, for messages. */
export function displayPath(file: string): string {
  const rel = relative(process.cwd(), resolve(file));
  return rel.startsWith("..") ? resolve(file) : rel;
}

/**
 * Leaves bare imports that do not resolve here to be resolved in the container, where an image's
 * `npmInstall` puts packages (native modules among them) that the caller need not have installed.
 */
const imageModules: esbuild.Plugin = {
  name: "skiff-image-modules",
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, async (args) => {
      if (args.pluginData?.skiffInner || args.path.startsWith("node:")) return undefined;
      const found = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        importer: args.importer,
        pluginData: { skiffInner: true },
      });
      return found.errors.length === 0 ? undefined : { path: args.path, external: true };
    });
  },
};
