import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "./config.js";
import { buildId, cliEntry } from "./paths.js";

/**
 * SKIFF_HOME/embedded.json: where the embedded server (`skiff up --embedded`, started by apps/host) listens.
 * It writes the file; the CLI reads it to find or restart that server.
 */
export interface EmbeddedState {
  url: string;
  pid: number;
  /** The build it runs; another build's server is restarted so code and runner match the CLI. */
  build?: string;
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

/**
 * The server this CLI talks to: SKIFF_SERVER_URL, or the embedded default (server + worker on this
 * machine, data under SKIFF_HOME), started in the background on first use and reused afterwards.
 */
export async function ensureServer(config: Config, say: (line: string) => void): Promise<string> {
  if (config.SKIFF_SERVER_URL) return config.SKIFF_SERVER_URL;
  const existing = await readState(config);
  if (existing && alive(existing.pid) && (await healthy(existing.url))) {
    if (existing.build === buildId()) return existing.url;
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
  try {
    if (owner) {
      const logPath = join(config.SKIFF_HOME, "embedded.log");
      say(`starting the embedded Skiff server (server + worker on this machine; logs: ${logPath})`);
      const log = openSync(logPath, "a");
      const child = spawn(process.execPath, [cliEntry(), "up", "--embedded"], {
        detached: true,
        stdio: ["ignore", log, log],
        env: process.env,
      });
      child.unref();
      closeSync(log);
    }
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const state = await readState(config);
      if (state && alive(state.pid) && (await healthy(state.url))) return state.url;
      await new Promise((r) => setTimeout(r, 150));
    }
    throw new Error(
      `the embedded server did not come up within 3 minutes: see ${join(config.SKIFF_HOME, "embedded.log")}; \`skiff up\` runs it in the foreground`,
    );
  } finally {
    if (owner) await rm(lock, { force: true });
  }
}
