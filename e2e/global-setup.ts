import { execFileSync } from "node:child_process";
import { resolve } from "node:path";

/** e2e tests drive the built CLI; build it once before any test file runs. */
export default function setup(): void {
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: resolve(import.meta.dirname, ".."), stdio: "inherit" });
}
