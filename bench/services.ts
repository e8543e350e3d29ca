import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** A process the bench started, stopped by {@link stop}. */
export interface Service {
  child: ChildProcess;
  stop(): Promise<void>;
}

/** A `skiff up` child on a private SKIFF_HOME, and a way to run the bench app's entrypoints against it. */
export interface SkiffStack extends Service {
  url: string;
  /** Runs `skiff run bench/apps/skiff-bench.ts::<entrypoint> --flag value…` and returns its `BENCH_RESULT` JSON. */
  run<T>(entrypoint: string, flags?: Record<string, number>): Promise<T>;
  /** VmRSS of the `skiff up` process, in MiB. */
  rss(): Promise<number>;
  /** Waits until `skiff up` has no child processes (every container has exited and been torn down). */
  settle(timeoutMs?: number): Promise<void>;
}

const APP = "bench/apps/skiff-bench.ts";
const RESULT_PREFIX = "BENCH_RESULT ";
const RUN_TIMEOUT_MS = 180_000;

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

/** Resolves with the first match of `pattern` in the child's stderr or stdout; rejects if it exits or times out. */
function waitForOutput(
  child: ChildProcess,
  pattern: RegExp,
  what: string,
  timeoutMs = 30_000,
): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk;
      const match = seen.match(pattern);
      if (match) finish(() => resolve(match));
    };
    const onExit = (code: number | null) =>
      finish(() => reject(new Error(`${what} exited (${code}) before it was ready:\n${seen.slice(-2000)}`)));
    const timer = setTimeout(
      () => finish(() => reject(new Error(`${what} was not ready after ${timeoutMs} ms:\n${seen.slice(-2000)}`))),
      timeoutMs,
    );
    const finish = (settle: () => void) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      settle();
    };
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
  if ((await Promise.race([exited.then(() => true), sleep(graceMs, false)])) === false) {
    child.kill("SIGKILL");
    await exited;
  }
}

/** A private `redis-server` on a free port, persisting nothing. */
export async function startRedis(): Promise<Service & { port: number }> {
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const service = { child, port, stop: () => terminate(child, 5000) };
  try {
    await waitForOutput(child, /Ready to accept connections/, "redis-server");
  } catch (error) {
    await service.stop();
    throw error;
  }
  return service;
}

/** Starts `skiff up` on a free port with a fresh SKIFF_HOME and waits until its worker has joined. */
export async function startSkiff(options: { root: string; runtime: string; cacheDir: string }): Promise<SkiffStack> {
  const cli = join(options.root, "dist", "cli.mjs");
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`make setup\``);
  const home = await mkdtemp(join(tmpdir(), "skiff-bench-"));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SKIFF_HOME: home,
    SKIFF_CACHE_DIR: options.cacheDir,
    SKIFF_RUNTIME: options.runtime,
    SKIFF_LOG_LEVEL: "warn",
    NO_COLOR: "1",
  };
  delete env.SKIFF_SERVER_URL;
  const child = spawn(process.execPath, [cli, "up", "--port", "0"], {
    cwd: options.root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stop = async () => {
    await terminate(child, 20_000);
    await rm(home, { recursive: true, force: true });
  };
  let url: string;
  try {
    url = (await waitForOutput(child, /server on (http:\/\/[\d.]+:\d+)/, "skiff up"))[1]!;
  } catch (error) {
    await stop();
    throw error;
  }
  const runEnv = { ...env, SKIFF_SERVER_URL: url };

  const run = <T>(entrypoint: string, flags: Record<string, number> = {}) =>
    new Promise<T>((resolve, reject) => {
      const args = [
        cli,
        "run",
        `${APP}::${entrypoint}`,
        ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, String(v)]),
      ];
      const runner = spawn(process.execPath, args, {
        cwd: options.root,
        env: runEnv,
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

  const rss = async () => {
    const status = await readFile(`/proc/${child.pid}/status`, "utf8");
    return Number(status.match(/VmRSS:\s+(\d+) kB/)?.[1]) / 1024;
  };

  const settle = async (timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (await childCount(child.pid!)) > 0) await sleep(200);
  };

  return { child, url, stop, run, rss, settle };
}

function childCount(pid: number): Promise<number> {
  return new Promise((resolve) => {
    execFile("pgrep", ["-P", String(pid)], (_error, stdout) => resolve(stdout.split("\n").filter(Boolean).length));
  });
}
