import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository (or install) root: the CLI runs bundled from dist/cli.mjs, or from source in tests. */
export function installRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "dist", "runner", "runner.mjs")) || existsSync(join(dir, "scripts", "build.mjs")))
      return dir;
    dir = resolve(dir, "..");
  }
  throw new Error("cannot find Skiff's install root (dist/runner/runner.mjs): run `make setup`");
}

/** dist/runner: the in-container runner a worker mounts into each container. */
export function runnerDir(): string {
  const dir = join(installRoot(), "dist", "runner");
  if (!existsSync(join(dir, "runner.mjs")))
    throw new Error(`the runner is not built (${dir}/runner.mjs): run \`make setup\``);
  return dir;
}

/** This build's id (written by scripts/build.mjs), or "dev" when running from source. */
export function buildId(): string {
  try {
    return readFileSync(join(installRoot(), "dist", "build-id"), "utf8").trim();
  } catch {
    return "dev";
  }
}

/** dist/cli.mjs: the skiff binary, which the CLI starts again as the embedded server. */
export function cliEntry(): string {
  return join(installRoot(), "dist", "cli.mjs");
}
