import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { removeDataTemplate } from "./stack.js";

/**
 * e2e tests drive the built CLI; build it once before any test file runs. The data directory stacks copy is
 * made by the first stack and removed at the end (and at the start, if a run was killed and left it).
 */
export default function setup(): () => void {
  removeDataTemplate();
  execFileSync(process.execPath, ["scripts/build.mjs"], { cwd: resolve(import.meta.dirname, ".."), stdio: "inherit" });
  return removeDataTemplate;
}
