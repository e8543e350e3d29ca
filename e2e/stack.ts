import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { credentialOf, readProfiles, resolveProfile } from "skiff/profiles";

export const ROOT = resolve(import.meta.dirname, "..");

/**
 * Writes `edit` of a fixture beside it as `.NAME.ts` (ignored by git), so that it resolves imports as the
 * fixture does; returns its path.
 */
export function fixtureVariant(fixture: string, name: string, edit: (code: string) => string): string {
  const file = join(ROOT, "e2e/fixtures", `.${name}.ts`);
  writeFileSync(file, edit(readFileSync(join(ROOT, fixture), "utf8")));
  return file;
}

/** Bundles an e2e client program (a plain Node program using the SDK) into `outDir`; returns its path. */
export async function bundleProgram(fixture: string, outDir: string): Promise<string> {
  const { build } = await import("esbuild");
  const outfile = join(outDir, `${fixture.replace(/\W+/g, "-")}.mjs`);
  await build({
    entryPoints: [join(ROOT, fixture)],
    bundle: true,
    platform: "node",
    format: "esm",
    outfile,
    logLevel: "silent",
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}
export const CLI = join(ROOT, "dist", "cli.mjs");

/**
 * The flag for `skiff deploy` and `skiff serve` where the case is not the type check: it takes seconds each
 * time. Its own cases check it (bad-input, serve-reload, packaging), and `tsc -p tsconfig.json` the fixtures.
 */
export const NO_TYPECHECK = "--no-typecheck";

/**
 * A new store's data directory, made by the first stack of a run and copied into the SKIFF_HOME of each
 * stack: a server makes its own on its first start in about 5 s (initdb), and a copy takes a few tens of
 * ms. global-setup.ts removes it when the run ends. packaging.test.ts's server, and the store's own tests,
 * still make theirs.
 */
const DATA_TEMPLATE = join(tmpdir(), `skiff-e2e-data-${createHash("sha256").update(ROOT).digest("hex").slice(0, 12)}`);

/** Puts a copy of DATA_TEMPLATE, made first if need be, where a server on `home` keeps its store. */
async function seedStore(home: string): Promise<void> {
  if (!existsSync(DATA_TEMPLATE)) {
    const { openPglite } = await import("@skiff/store");
    const staging = `${DATA_TEMPLATE}.new-${process.pid}`;
    await (await openPglite(staging)).close();
    renameSync(staging, DATA_TEMPLATE);
  }
  cpSync(DATA_TEMPLATE, join(home, "data"), { recursive: true });
}

/** Removes the data directory stacks copy (see seedStore). */
export function removeDataTemplate(): void {
  rmSync(DATA_TEMPLATE, { recursive: true, force: true });
}

/** Whether a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** The runtime e2e tests use: SKIFF_E2E_RUNTIME, else gVisor where runsc exists, else runc, else process. */
export function e2eRuntime(): "gvisor" | "runc" | "process" {
  const chosen = process.env.SKIFF_E2E_RUNTIME;
  if (chosen === "gvisor" || chosen === "runc" || chosen === "process") return chosen;
  if (process.getuid?.() === 0 && hasCommand("runsc")) return "gvisor";
  if (process.getuid?.() === 0 && hasCommand("runc")) return "runc";
  return "process";
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Lines `RESULT <json>` printed by a fixture entrypoint, parsed. */
  results: unknown[];
}

/** A TCP port nothing listens on now. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolvePort(port));
    });
    server.on("error", reject);
  });
}

/**
 * A real server and a real worker, as separate processes, on a private SKIFF_HOME; or, from `Stack.up`, both
 * in one `skiff up` process.
 */
export class Stack {
  server: ChildProcess | undefined;
  worker: ChildProcess | undefined;
  readonly url: string;
  private readonly output: string[] = [];

  private constructor(
    readonly home: string,
    readonly port: number,
    readonly runtime: string,
    readonly databaseUrl: string | undefined,
  ) {
    this.url = `http://127.0.0.1:${port}`;
  }

  /** GET of an API path as this stack's local admin (the token the server saved in SKIFF_HOME). */
  async api<T>(path: string): Promise<T> {
    const profile = resolveProfile(await readProfiles(this.home), {});
    const response = await fetch(`${this.url}${path}`, {
      headers: { authorization: `Bearer ${credentialOf(profile)}` },
    });
    if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** Extra environment for the worker (kept across restarts). */
  workerEnv: Record<string, string> = {};
  /** Extra environment for the server (kept across restarts). */
  serverEnv: Record<string, string> = {};

  /**
   * `databaseUrl` runs the server on PostgreSQL instead of embedded PGlite; `workerEnv` adds to the worker's
   * environment (e.g. SKIFF_ALLOW_HOST_PORTS), `serverEnv` to the server's (e.g. SKIFF_WEB_URL).
   */
  static async start(
    options: {
      runtime?: string;
      databaseUrl?: string;
      workerEnv?: Record<string, string>;
      serverEnv?: Record<string, string>;
    } = {},
  ): Promise<Stack> {
    if (!existsSync(CLI)) throw new Error("dist/cli.mjs is missing: run `node scripts/build.mjs`");
    const home = await mkdtemp(join(tmpdir(), "skiff-e2e-"));
    const stack = new Stack(home, await freePort(), options.runtime ?? e2eRuntime(), options.databaseUrl);
    if (!options.databaseUrl) await seedStore(home);
    stack.workerEnv = options.workerEnv ?? {};
    stack.serverEnv = options.serverEnv ?? {};
    await stack.startServer();
    await stack.startWorker();
    return stack;
  }

  /**
   * `skiff up`: server and worker in one process, `server` (`worker` stays undefined, and `startServer` and
   * `startWorker` do not apply), where the gateway reaches containers' web sockets without the worker's
   * relay. `env` adds to its environment.
   */
  static async up(options: { runtime?: string; env?: Record<string, string> } = {}): Promise<Stack> {
    if (!existsSync(CLI)) throw new Error("dist/cli.mjs is missing: run `node scripts/build.mjs`");
    const home = await mkdtemp(join(tmpdir(), "skiff-e2e-"));
    const stack = new Stack(home, await freePort(), options.runtime ?? e2eRuntime(), undefined);
    await seedStore(home);
    stack.serverEnv = options.env ?? {};
    stack.server = stack.spawn(["up", "--port", String(stack.port)], {
      SKIFF_SERVER_URL: undefined,
      ...stack.serverEnv,
    });
    await stack.waitForWorkers(1);
    return stack;
  }

  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SKIFF_HOME: this.home,
      SKIFF_CACHE_DIR: process.env.SKIFF_CACHE_DIR ?? join(process.env.HOME ?? "/root", ".skiff", "cache"),
      SKIFF_SERVER_URL: this.url,
      SKIFF_RUNTIME: this.runtime,
      SKIFF_LOG_LEVEL: "warn",
      NO_COLOR: "1",
    };
  }

  async startServer(): Promise<void> {
    this.server = this.spawn(["server", "--port", String(this.port)], {
      SKIFF_SERVER_URL: undefined,
      SKIFF_DATABASE_URL: this.databaseUrl,
      ...this.serverEnv,
    });
    await this.waitFor(
      async () => (await fetch(`${this.url}/v1/health`).catch(() => undefined))?.ok === true,
      "server",
    );
  }

  async startWorker(): Promise<void> {
    this.worker = this.spawn(["worker"], this.workerEnv);
    await this.waitForWorkers(1);
  }

  /** Waits until the server counts `count` connected workers (e.g. after a server restart). */
  async waitForWorkers(count: number): Promise<void> {
    await this.waitFor(async () => {
      const health = await fetch(`${this.url}/v1/health`)
        .then((r) => r.json() as Promise<{ workers: number }>)
        .catch(() => undefined);
      return (health?.workers ?? 0) >= count;
    }, "worker");
  }

  /** Kills a process and waits for it to be gone. */
  async kill(which: "server" | "worker", signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this[which];
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }

  /** Runs a bundled client program (see bundleProgram) against this stack; returns its `RESULT` line, parsed. */
  async runProgram<T>(
    program: string,
    args: string[] = [],
    timeoutMs = 240_000,
    env: Record<string, string> = {},
  ): Promise<T> {
    const { stdout } = await promisify(execFile)(process.execPath, [program, ...args], {
      env: { ...this.env, ...env },
      timeout: timeoutMs,
    });
    const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`${program} printed no RESULT line:\n${stdout}`);
    return JSON.parse(line.slice(7)) as T;
  }

  /** Runs the real CLI against this stack. */
  run(
    args: string[],
    options: {
      onLine?: (line: string, child: ChildProcess) => void;
      timeoutMs?: number;
      env?: Record<string, string>;
      /** Written to the command's stdin, which is then closed. */
      input?: string;
    } = {},
  ): Promise<RunResult> {
    return new Promise((resolveRun, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        cwd: ROOT,
        env: { ...this.env, ...options.env },
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
      let stdout = "";
      let stderr = "";
      let partial = "";
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`skiff ${args.join(" ")} timed out\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      }, options.timeoutMs ?? 120_000);
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
        const lines = (partial + chunk).split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) options.onLine?.(line, child);
      });
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      // "close", not "exit": the process may exit before its last output has been read from the pipes.
      child.on("close", (code) => {
        clearTimeout(timer);
        const results = stdout
          .split("\n")
          .filter((line) => line.startsWith("RESULT "))
          .map((line) => JSON.parse(line.slice(7)) as unknown);
        resolveRun({ code, stdout, stderr, results });
      });
    });
  }

  /** What the server and worker printed, for failure messages. */
  logs(): string {
    return this.output.join("");
  }

  async stop(): Promise<void> {
    await this.kill("worker", "SIGTERM");
    await this.kill("server", "SIGTERM");
    // A worker that shuts down leaves no container behind: none of its rootfs stays mounted.
    const stateRoot = `/run/skiff/w-${createHash("sha256").update(join(this.home, "worker")).digest("hex").slice(0, 12)}`;
    const left = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .filter((line) => line.split(" ")[1]?.startsWith(`${stateRoot}/`));
    await rm(this.home, { recursive: true, force: true });
    if (left.length > 0)
      throw new Error(`the worker left ${left.length} mount(s) under ${stateRoot}:\n${left.join("\n")}`);
  }

  private spawn(args: string[], env: Record<string, string | undefined>): ChildProcess {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: ROOT,
      env: { ...this.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString());
      if (this.output.length > 2000) this.output.shift();
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    return child;
  }

  private async waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the ${what} did not come up:\n${this.logs()}`);
  }
}
