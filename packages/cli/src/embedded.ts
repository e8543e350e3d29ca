import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SkiffError } from "skiff/errors";
import type { Config } from "./config.js";
import { buildId, cliEntry } from "./paths.js";

/**
 * SKIFF_HOME/embedded.json: where the server of this SKIFF_HOME listens: the embedded one (`skiff up
 * --embedded`, started by the CLI) or a `skiff up` run in a terminal. It writes the file; the CLI and the SDK
 * read it to find that server (and the CLI, to restart an embedded one of another build).
 */
export interface EmbeddedState {
  url: string;
  pid: number;
  /** The build it runs; another build's embedded server is restarted so code and runner match the CLI. */
  build?: string;
  /** A `skiff up` in a terminal: used whatever its build, never restarted (its user started it). */
  foreground?: boolean;
}

function embeddedStatePath(config: Config): string {
  return join(config.SKIFF_HOME, "embedded.json");
}

/** Records the embedded server this process runs. */
export async function writeEmbeddedState(config: Config, state: EmbeddedState): Promise<void> {
  await writeFile(embeddedStatePath(config), JSON.stringify(state));
}

/** Forgets the embedded server, if the record is still this process's (`pid`). */
export async function clearEmbeddedState(config: Config, pid: number): Promise<void> {
  const state = await readState(config);
  if (state?.pid === pid) await rm(embeddedStatePath(config), { force: true });
}

async function readState(config: Config): Promise<EmbeddedState | undefined> {
  try {
    return JSON.parse(await readFile(embeddedStatePath(config), "utf8")) as EmbeddedState;
  } catch {
    return undefined;
  }
}

async function healthy(url: string): Promise<boolean> {
  try {
    const response = await fetch(new URL("/v1/health", url), { signal: AbortSignal.timeout(2000) });
    return response.ok && ((await response.json()) as { workers: number }).workers > 0;
  } catch {
    return false;
  }
}

async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 20_000;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The last lines a log file got from `offset` on (what one start of the embedded server wrote), stack frames left out. */
async function logTail(path: string, offset: number, lines = 12): Promise<string> {
  const file = await open(path, "r").catch(() => undefined);
  if (!file) return "";
  try {
    const { size } = await file.stat();
    const start = Math.max(offset, size - 64 * 1024);
    const buffer = Buffer.alloc(size - start);
    await file.read(buffer, 0, buffer.length, start);
    return buffer
      .toString("utf8")
      .trimEnd()
      .split("\n")
      .filter((line) => !/^\s+at /.test(line))
      .slice(-lines)
      .join("\n");
  } finally {
    await file.close();
  }
}

/**
 * The server this CLI talks to: SKIFF_SERVER_URL, a `skiff up` running on SKIFF_HOME, or the embedded default
 * (server + worker on this machine, data under SKIFF_HOME), started in the background on first use and reused
 * afterwards. `command`: the embedded server's arguments to node (tests start something else).
 */
export async function ensureServer(
  config: Config,
  say: (line: string) => void,
  options: { command?: string[] } = {},
): Promise<string> {
  if (config.SKIFF_SERVER_URL) return config.SKIFF_SERVER_URL;
  const existing = await readState(config);
  if (existing && alive(existing.pid) && (await healthy(existing.url))) {
    if (existing.build === buildId()) return existing.url;
    if (existing.foreground) {
      say(
        `the \`skiff up\` on ${existing.url} (pid ${existing.pid}) runs another build of Skiff: restart it to run this one`,
      );
      return existing.url;
    }
    say("the embedded server runs another build of Skiff: restarting it");
    await stopProcess(existing.pid);
  }

  await mkdir(config.SKIFF_HOME, { recursive: true });
  const lock = join(config.SKIFF_HOME, "embedded.lock");
  // A lock left by a command that died while starting the server is stale after a few minutes.
  const lockAge = await stat(lock).then(
    (s) => Date.now() - s.mtimeMs,
    () => 0,
  );
  if (lockAge > 200_000) await rm(lock, { force: true });
  let owner = false;
  try {
    closeSync(openSync(lock, "wx"));
    owner = true;
  } catch {
    // Another skiff command is starting it; wait for that one.
  }
  const logPath = join(config.SKIFF_HOME, "embedded.log");
  try {
    // Set when the server this command started exits before it serves: waiting longer would not help.
    let exited: { code: number | null; logFrom: number } | undefined;
    if (owner) {
      say(`starting the embedded Skiff server (server + worker on this machine; logs: ${logPath})`);
      const logFrom = await stat(logPath).then(
        (s) => s.size,
        () => 0,
      );
      const log = openSync(logPath, "a");
      const child = spawn(process.execPath, options.command ?? [cliEntry(), "up", "--embedded"], {
        detached: true,
        stdio: ["ignore", log, log],
        env: process.env,
      });
      child.once("exit", (code) => {
        exited = { code, logFrom };
      });
      child.unref();
      closeSync(log);
    }
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const state = await readState(config);
      if (state && alive(state.pid) && (await healthy(state.url))) return state.url;
      if (exited) {
        const tail = await logTail(logPath, exited.logFrom);
        throw new SkiffError(
          "UNAVAILABLE",
          `the embedded server exited (code ${exited.code}) before it served${tail ? `:\n${tail}\n` : "; "}(log: ${logPath}). To use a server that runs elsewhere, set SKIFF_SERVER_URL`,
        );
      }
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new SkiffError(
      "UNAVAILABLE",
      `the embedded server did not come up within 3 minutes: see ${logPath}; \`skiff up\` runs it in the foreground`,
    );
  } finally {
    if (owner) await rm(lock, { force: true });
  }
}
