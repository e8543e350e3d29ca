// Packs the publishable packages into tarballs: the SDK (`skiff`: compiled ESM and .d.ts, with
// @skiff/protocol inside) and the CLI (`@skiff/cli`: the built dist/ with a `skiff` bin).
//
//   node scripts/pack.mjs [--no-build] [OUT_DIR]
//
// OUT_DIR defaults to dist/packages; the tarballs' paths are printed. --no-build packs the dist/ that
// scripts/build.mjs already wrote (as the e2e test's global setup does), instead of building it again.
//
// The workspace package.json files keep pointing at src/, so vitest, tsc and esbuild use the sources
// in the repository with no build and no custom export conditions. The manifests published are
// written here from them: exports pointing at dist/ and types/, the workspace packages bundled in,
// and every third-party package that stays external listed as a dependency.
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import * as esbuild from "esbuild";
import { CLI_WORKSPACES } from "./cli-workspaces.mjs";

const root = resolve(import.meta.dirname, "..");
process.chdir(root);
const argv = process.argv.slice(2);
const rebuild = !argv.includes("--no-build");
const out = resolve(argv.find((arg) => !arg.startsWith("--")) ?? "dist/packages");
const stage = join(root, "dist", "pack");
rmSync(stage, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const manifest = (dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
const isWorkspace = (name) => name === "skiff" || name.startsWith("@skiff/");

/** The third-party dependencies of workspace packages, with the ranges their package.json files give. */
function thirdParty(...dirs) {
  const deps = {};
  for (const dir of dirs) {
    for (const [name, range] of Object.entries(manifest(dir).dependencies ?? {})) {
      if (!isWorkspace(name)) deps[name] = range;
    }
  }
  return Object.fromEntries(Object.entries(deps).sort(([a], [b]) => a.localeCompare(b)));
}

/** The protocol's source files its exports reach; a `./x/*` export reaches every file of its folder. */
function protocolSources() {
  const dir = join(root, "packages/protocol");
  return Object.values(manifest(dir).exports).flatMap((path) => {
    if (!path.includes("*")) return [join(dir, path)];
    const [folder, suffix] = path.split("*");
    return readdirSync(join(dir, folder))
      .filter((name) => name.endsWith(suffix) && !name.endsWith(`.test${suffix}`))
      .map((name) => join(dir, folder, name));
  });
}

/** A protocol import's subpath (`""`, `/frame`, `/http/apps`) as its declaration file under types/protocol. */
function protocolTarget(sub) {
  const exports = manifest(join(root, "packages/protocol")).exports;
  const key = `.${sub}`;
  const wildcard = Object.keys(exports).find((k) => k.endsWith("/*") && key.startsWith(k.slice(0, -1)));
  const path = exports[key] ?? exports[wildcard].replace("*", key.slice(wildcard.length - 1));
  return path.replace(/^\.\/src\//, "").replace(/\.ts$/, ".js");
}

function npmPack(dir) {
  const output = execFileSync("npm", ["pack", "--json", "--pack-destination", out], { cwd: dir, encoding: "utf8" });
  return join(out, JSON.parse(output)[0].filename);
}

const sdkSource = manifest("packages/sdk");
const common = { engines: { node: ">=20" }, type: "module", version: sdkSource.version };

// --- skiff (the SDK) ---
const sdk = join(stage, "sdk");
const sdkEntries = ["index", "plumbing", "errors", "profiles"];
await esbuild.build({
  entryPoints: Object.fromEntries(sdkEntries.map((name) => [name, `packages/sdk/src/${name}.ts`])),
  outdir: join(sdk, "dist"),
  bundle: true,
  // One copy of each module across the entry points: `skiff` and `skiff/errors` share SkiffError.
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: "linked",
  logLevel: "warning",
  plugins: [
    {
      // Workspace packages (@skiff/protocol) go inside; third-party ones stay dependencies.
      name: "external-third-party",
      setup(build) {
        build.onResolve({ filter: /^[^./]/ }, (args) =>
          isWorkspace(args.path) || args.path.startsWith("node:") ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});

// Declarations: tsc emits the SDK's and protocol's .d.ts; imports of @skiff/protocol become relative.
const declOut = join(stage, "decl");
const tsconfig = join(stage, "tsconfig.json");
writeFileSync(
  tsconfig,
  JSON.stringify({
    extends: join(root, "tsconfig.base.json"),
    compilerOptions: {
      noEmit: false,
      declaration: true,
      emitDeclarationOnly: true,
      rootDir: join(root, "packages"),
      outDir: declOut,
      types: ["node"],
      typeRoots: [join(root, "node_modules/@types")],
    },
    files: [
      ...sdkEntries.map((name) => join(root, `packages/sdk/src/${name}.ts`)),
      // Reached through node_modules/@skiff/protocol, which tsc treats as a library and does not emit.
      ...protocolSources(),
    ],
  }),
);
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", tsconfig], { stdio: "inherit" });
const types = join(sdk, "types");
cpSync(join(declOut, "sdk", "src"), join(types, "sdk"), { recursive: true });
cpSync(join(declOut, "protocol", "src"), join(types, "protocol"), { recursive: true });
for (const file of walk(join(types, "sdk"))) {
  const text = readFileSync(file, "utf8").replace(/(["'])@skiff\/protocol(\/[\w/-]+)?\1/g, (_, quote, sub) => {
    const target = join(types, "protocol", protocolTarget(sub ?? ""));
    const rel = relative(dirname(file), target);
    return `${quote}${rel.startsWith(".") ? rel : `./${rel}`}${quote}`;
  });
  writeFileSync(file, text);
}
const unresolved = walk(types).filter((file) => readFileSync(file, "utf8").includes("@skiff/"));
if (unresolved.length > 0) throw new Error(`declarations still name a workspace package: ${unresolved.join(", ")}`);
for (const file of walk(types)) {
  for (const [, path] of readFileSync(file, "utf8").matchAll(/from "(\.[^"]+)\.js"/g)) {
    if (!existsSync(join(dirname(file), `${path}.d.ts`))) throw new Error(`${file} imports ${path}.js, not packed`);
  }
}

writeFileSync(
  join(sdk, "package.json"),
  `${JSON.stringify(
    {
      name: sdkSource.name,
      ...common,
      description: "Skiff SDK: define functions that run in containers, and call deployed ones",
      exports: Object.fromEntries(
        sdkEntries.map((name) => [
          name === "index" ? "." : `./${name}`,
          { types: `./types/sdk/${name}.d.ts`, default: `./dist/${name}.js` },
        ]),
      ),
      types: "./types/sdk/index.d.ts",
      files: ["dist", "types"],
      dependencies: thirdParty("packages/sdk", "packages/protocol"),
    },
    null,
    2,
  )}\n`,
);

// --- @skiff/cli (the skiff command, with server, worker and store) ---
const cliSource = manifest("packages/cli");
const cli = join(stage, "cli");
if (rebuild) await import("./build.mjs");
else if (!existsSync(join(root, "dist", "runner", "runner.mjs")))
  throw new Error("dist/ is not built: run node scripts/build.mjs");
for (const path of ["cli.mjs", "cli.mjs.map", "cli-chunks", "runner", "build-id"]) {
  cpSync(join(root, "dist", path), join(cli, "dist", path), { recursive: true });
}
mkdirSync(join(cli, "bin"));
writeFileSync(join(cli, "bin", "skiff.mjs"), '#!/usr/bin/env node\nimport "../dist/cli.mjs";\n');
chmodSync(join(cli, "bin", "skiff.mjs"), 0o755);
writeFileSync(
  join(cli, "package.json"),
  `${JSON.stringify(
    {
      name: cliSource.name,
      ...common,
      description: "Skiff CLI: run and deploy functions in containers; run a server and workers",
      bin: { skiff: "./bin/skiff.mjs" },
      files: ["bin", "dist"],
      // What dist/cli.mjs leaves external (see scripts/build.mjs): the packages of every workspace it bundles.
      dependencies: thirdParty(...CLI_WORKSPACES),
      // User code imports the SDK from the project (npm install skiff); the CLI carries its own copy.
      peerDependencies: { skiff: sdkSource.version },
      peerDependenciesMeta: { skiff: { optional: true } },
    },
    null,
    2,
  )}\n`,
);

for (const dir of [sdk, cli]) console.log(npmPack(dir));

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}
