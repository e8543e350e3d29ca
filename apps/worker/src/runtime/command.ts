import { access, constants } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { finished } from "node:stream/promises";
import { spawnCommand } from "./spawner.js";

/** The outcome of a finished command. */
export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion and collects its output; never rejects for a non-zero exit. */
export async function runCommand(
  file: string,
  args: string[],
  options: { cwd?: string; input?: string } = {},
): Promise<CommandResult> {
  const child = spawnCommand(file, args, options);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  await child.started;
  const [{ code, signal }] = await Promise.all([child.exited, finished(child.stdout), finished(child.stderr)]);
  return { code, signal, stdout, stderr };
}

/** Runs a command and rejects with its stderr when it fails. */
export async function runChecked(file: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  const result = await runCommand(file, args, options);
  if (result.code !== 0) {
    const detail = result.stderr.trim() || result.stdout.trim() || `signal ${result.signal}`;
    throw new Error(`\`${[file, ...args].join(" ")}\` failed (exit ${result.code}): ${detail}`);
  }
  return result.stdout;
}

const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** Finds an executable on PATH or in the usual system directories (root's sbin is often off PATH). */
export async function findExecutable(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter).filter(Boolean), ...SYSTEM_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}
