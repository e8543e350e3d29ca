import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createTestDatabase } from "../internal/store/src/testing/postgres-fixture.js";

/** Something the bench started and must stop. */
export interface Service {
  stop(): Promise<void>;
}

/** A `skiff up` child, and a way to run the bench app's entrypoints against it. */
export interface SkiffStack extends Service {
  url: string;
  /**
   * Runs `skiff run bench/apps/skiff-bench.ts::<entrypoint> --flag value…` (or `FILE::entrypoint`) and returns
   * its `BENCH_RESULT` JSON.
   */
  run<T>(entrypoint: string, flags?: Record<string, number>, extraEnv?: Record<string, string>): Promise<T>;
  /** Runs the CLI (`skiff ARGS…`) against this stack; rejects with its output if it fails. */
  cli(args: string[]): Promise<{ stdout: string; stderr: string }>;
  /** `skiff deploy FILE`; resolves with the URL of each web function's label, as the CLI printed them. */
  deploy(file: string): Promise<Record<string, string>>;
  /** VmRSS of the `skiff up` process, in MiB. */
  rss(): Promise<number>;
  /** The `skiff up` process (server and worker). */
  pid: number;
  /** Waits until `skiff up` runs no process but its helper (every container has exited and been torn down). */
  settle(timeoutMs?: number): Promise<void>;
}

/** Where and how {@link startSkiff} runs Skiff. */
export interface SkiffOptions {
  /** The repository root, holding dist/cli.mjs and bench/apps. */
  root: string;
  runtime: "gvisor" | "runc";
  /** SKIFF_HOME; the caller creates and removes it. */
  home: string;
  /** SKIFF_CACHE_DIR, with the base image and Node build. */
  cacheDir: string;
  /** SKIFF_DATABASE_URL: a PostgreSQL database as the store; PGlite under `home` without it. */
  databaseUrl?: string;
}

const APP = "bench/apps/skiff-bench.ts";
const RESULT_PREFIX = "BENCH_RESULT ";
/** A URL line as `skiff deploy` prints it: `skiff   LABEL  URL`. */
const URL_LINE = /^skiff\s+([a-z0-9-]+)\s+(https?:\/\/\S+\/w\/\S+)$/;
const RUN_TIMEOUT_MS = 180_000;
// A worker's startup cleanup removes every container in the runtime's state directory under /run/skiff,
// so it gets a private one: other Skiffs on this host and the bench must not kill each other's containers.
const PRIVATE_RUN = 'mkdir -p /run/skiff && mount -t tmpfs -o mode=0700 skiff-bench /run/skiff && exec "$0" "$@"';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with the first match of `pattern` in the child's output; rejects if it exits or times out first. */
function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  timeoutMs = 60_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      settle();
    };
    const onData = (chunk: Buffer) => {
      seen += chunk;
      const match = seen.match(pattern);
      if (match) finish(() => resolve(match));
    };
    const fail = (why: string) => finish(() => reject(new Error(`${what} ${why}:\n${seen.slice(-2000)}`)));
    const onExit = (code: number | null) => fail(`exited (${code}) before it was ready`);
    const timer = setTimeout(() => fail(`was not ready after ${timeoutMs} ms`), timeoutMs);
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

/** SIGTERM, then SIGKILL if the child is still there after `graceMs`. */
async function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Starts a child whose readiness shows as `ready` in its output; stops it again if it never gets there. */
async function startChild(cmd: string, args: string[], ready: RegExp, cwd?: string, env?: NodeJS.ProcessEnv) {
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  try {
    return { child, match: await waitForOutput(child, ready, cmd) };
  } catch (error) {
    await terminate(child, 5000);
    throw error;
  }
}

/** A new, empty PostgreSQL database on the server `adminUrl` names; dropped again by `stop`. */
export async function createDatabase(adminUrl: string): Promise<Service & { url: string }> {
  const { url, drop } = await createTestDatabase(adminUrl);
  return { url, stop: drop };
}

/** A private `redis-server` on a free port, persisting nothing. */
export async function startRedis(): Promise<Service & { port: number }> {
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const { child } = await startChild("redis-server", args, /Ready to accept connections/);
  return { port, stop: () => terminate(child, 5000) };
}

/** The web bench's plain Hono server (dist/bench-hono-server.mjs) in a process of its own, on loopback. */
export async function startHonoServer(root: string): Promise<Service & { url: string; pid: number }> {
  const script = join(root, "dist", "bench-hono-server.mjs");
  if (!existsSync(script)) throw new Error(`${script} is missing: run \`node scripts/build.mjs\``);
  const { child, match } = await startChild(process.execPath, [script], /listening (\d+)/, root);
  return { url: `http://127.0.0.1:${match[1]}`, pid: child.pid!, stop: () => terminate(child, 5000) };
}

/**
 * With SKIFF_BENCH_PROFILE=DIR, `skiff up` (server and worker) writes a V8 CPU profile into DIR when it stops
 * (open it in Chrome's DevTools); NODE_OPTIONS may not carry --cpu-prof.
 */
function profileArgs(): string[] {
  const dir = process.env.SKIFF_BENCH_PROFILE;
  return dir ? ["--cpu-prof", "--cpu-prof-dir", dir] : [];
}

/** Starts `skiff up` on a free port and waits until its worker has joined. */
export async function startSkiff(options: SkiffOptions): Promise<SkiffStack> {
  const cliPath = join(options.root, "dist", "cli.mjs");
  if (!existsSync(cliPath)) throw new Error(`${cliPath} is missing: run \`make setup\``);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SKIFF_HOME: options.home,
    SKIFF_CACHE_DIR: options.cacheDir,
    SKIFF_RUNTIME: options.runtime,
    SKIFF_LOG_LEVEL: "warn",
    NO_COLOR: "1",
  };
  delete env.SKIFF_SERVER_URL;
  delete env.SKIFF_DATABASE_URL;
  if (options.databaseUrl) env.SKIFF_DATABASE_URL = options.databaseUrl;
  const up = [
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    PRIVATE_RUN,
    process.execPath,
    ...profileArgs(),
    cliPath,
    "up",
    "--port",
    "0",
  ];
  const { child, match } = await startChild("unshare", up, /server on (http:\/\/[\d.]+:\d+)/, options.root, env);
  const url = match[1]!;
  const pid = child.pid!;

  const run = <T>(entrypoint: string, flags: Record<string, number> = {}, extraEnv: Record<string, string> = {}) =>
    new Promise<T>((resolve, reject) => {
      const argv = Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]);
      const target = entrypoint.includes("::") ? entrypoint : `${APP}::${entrypoint}`;
      const runner = spawn(process.execPath, [cliPath, "run", target, ...argv], {
        cwd: options.root,
        env: { ...env, ...extraEnv, SKIFF_SERVER_URL: url },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      runner.stdout.on("data", (chunk: Buffer) => {
        stdout += chunk;
      });
      runner.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => runner.kill("SIGKILL"), RUN_TIMEOUT_MS);
      runner.once("exit", (code, signal) => {
        clearTimeout(timer);
        const line = stdout.split("\n").find((l) => l.startsWith(RESULT_PREFIX));
        if (code === 0 && line) return resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as T);
        reject(new Error(`skiff run ::${entrypoint} failed (${signal ?? code}):\n${(stderr || stdout).slice(-3000)}`));
      });
    });

  const cli = (args: string[]) =>
    promisify(execFile)(process.execPath, [cliPath, ...args], {
      cwd: options.root,
      env: { ...env, SKIFF_SERVER_URL: url },
      timeout: RUN_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: Error & { stdout?: string; stderr?: string }) => {
      throw new Error(
        `skiff ${args.join(" ")} failed: ${error.message}\n${(error.stderr || error.stdout || "").slice(-3000)}`,
      );
    });

  const deploy = async (file: string) => {
    const { stderr } = await cli(["deploy", file]);
    const urls: Record<string, string> = {};
    for (const line of stderr.split("\n")) {
      const match = URL_LINE.exec(line.trim());
      if (match) urls[match[1]!] = match[2]!;
    }
    return urls;
  };

  const rss = async () => {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1]) / 1024;
  };

  const settle = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (await childCount(pid)) > 0) await sleep(200);
  };

  return { url, pid, run, cli, deploy, rss, settle, stop: () => terminate(child, 20_000) };
}

/** Processes `skiff up` runs for containers and teardowns: its children and those of its skiff-spawner helper. */
async function childCount(pid: number): Promise<number> {
  const children = await psChildren(pid);
  const spawners = children.filter((child) => child.comm === "skiff-spawner");
  const ofSpawners = await Promise.all(spawners.map((spawner) => psChildren(spawner.pid)));
  return children.length - spawners.length + ofSpawners.flat().length;
}

function psChildren(pid: number): Promise<{ pid: number; comm: string }[]> {
  return new Promise((resolve) => {
    execFile("ps", ["--ppid", String(pid), "-o", "pid=,comm="], (_error, stdout) =>
      resolve(
        stdout
          .split("\n")
          .map((line) => line.trim().split(/\s+/))
          .filter(([id]) => id)
          .map(([id, comm]) => ({ pid: Number(id), comm: comm ?? "" })),
      ),
    );
  });
}
