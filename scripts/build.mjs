// Builds what runs outside vitest: the CLI (dist/cli.mjs), the in-container runner (dist/runner/runner.mjs)
// and the benchmark (dist/bench.mjs).
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import * as esbuild from "esbuild";
import { CLI_WORKSPACES } from "./cli-workspaces.mjs";

const requireShim =
  "import { createRequire as __skiffCreateRequire } from 'node:module'; const require = __skiffCreateRequire(import.meta.url);";
// The CLI keeps third-party packages external (PGlite loads its wasm next to its own files).
const external = new Set();
for (const dir of CLI_WORKSPACES) {
  const pkg = JSON.parse(readFileSync(`${dir}/package.json`, "utf8"));
  for (const name of Object.keys(pkg.dependencies ?? {}))
    if (!name.startsWith("@skiff/") && name !== "skiff") external.add(name);
}

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  banner: { js: requireShim },
};
rmSync("dist/cli-chunks", { recursive: true, force: true });
await Promise.all([
  // Split so each command loads only its own modules: `skiff run` does not load PGlite, Hono or the worker.
  esbuild.build({
    ...common,
    entryPoints: { cli: "apps/host/src/main.ts" },
    outdir: "dist",
    entryNames: "[name]",
    chunkNames: "cli-chunks/[name]-[hash]",
    outExtension: { ".js": ".mjs" },
    splitting: true,
    external: [...external],
  }),
  // The runner goes into containers with no node_modules: bundle everything.
  esbuild.build({
    ...common,
    entryPoints: ["packages/sdk/src/runner/main.ts"],
    outfile: "dist/runner/runner.mjs",
    external: ["cbor-extract"],
    // Every container loads this file: no source map to parse, and minified to load faster.
    sourcemap: false,
    minify: true,
  }),
  // BullMQ loads its Lua scripts from its own directory: keep every package external.
  esbuild.build({ ...common, entryPoints: ["bench/run.ts"], outfile: "dist/bench.mjs", packages: "external" }),
  // The web bench's plain Hono server runs in a process of its own, as Skiff's server does.
  esbuild.build({
    ...common,
    entryPoints: ["bench/baselines/hono-server.ts"],
    outfile: "dist/bench-hono-server.mjs",
    packages: "external",
  }),
]);

// Identifies this build: a running embedded server from another build is restarted by the CLI.
const hash = createHash("sha256");
for (const file of ["dist/cli.mjs", "dist/runner/runner.mjs"]) hash.update(readFileSync(file));
writeFileSync("dist/build-id", hash.digest("hex").slice(0, 16));
