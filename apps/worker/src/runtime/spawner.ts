import { type ChildProcess, spawn } from "node:child_process";
import { PassThrough, type Readable, Writable } from "node:stream";

/** How a command ended. */
type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/** A command started by the spawner: its output streams, its input if asked for, and how it ended. */
export interface Spawned {
  stdout: Readable;
  stderr: Readable;
  stdin?: Writable;
  /** Resolves once the command runs; rejects if it could not start (e.g. ENOENT). */
  started: Promise<void>;
  /** Resolves once it exited and its output streams ended. */
  exited: Promise<ExitStatus>;
}

/** What this process asks of the helper. */
type Request =
  | {
      t: "spawn";
      id: number;
      file: string;
      args: string[];
      cwd?: string;
      env: NodeJS.ProcessEnv;
      stdin: boolean;
      input?: string;
    }
  | { t: "stdin"; id: number; data: Uint8Array }
  | { t: "stdin-end"; id: number }
  /** This many bytes of a command's output were taken by whoever reads it here. */
  | { t: "ack"; id: number; bytes: number };

/** What the helper tells this process about a command. */
type Event =
  | { t: "spawned"; id: number }
  | { t: "error"; id: number; message: string; code?: string }
  | { t: "out"; id: number; fd: 1 | 2; data: Uint8Array }
  | ({ t: "exit"; id: number } & ExitStatus);

/**
 * The helper's program. It runs as the source of `node -e`, so it must stand alone: it uses only its argument
 * (the helper's `require`, passed in so that no bundler rewrites the call) and `process`. It starts what it is
 * asked to, relays output and exits in order, and leaves its children running if this process goes (as they
 * would be left if this process had started them itself).
 */
function helperMain(load: NodeJS.Require): void {
  process.title = "skiff-spawner";
  const { spawn: start } = load("node:child_process") as typeof import("node:child_process");
  const send = (event: unknown) => process.send?.(event);
  const children = new Map<number, import("node:child_process").ChildProcess>();
  // Output sent and not yet taken on the other side, per command: past a limit the command's pipes pause, so a
  // command that writes faster than its output is read waits, as it would on a plain pipe.
  const unacked = new Map<number, number>();
  const MAX_UNACKED = 1 << 20;
  const flow = (id: number, change: number) => {
    if (!children.has(id)) return;
    const bytes = (unacked.get(id) ?? 0) + change;
    unacked.set(id, bytes);
    const child = children.get(id);
    for (const stream of [child?.stdout, child?.stderr]) {
      if (bytes > MAX_UNACKED) stream?.pause();
      else stream?.resume();
    }
  };
  process.on("message", (request: Request) => {
    if (request.t === "stdin") return void children.get(request.id)?.stdin?.write(request.data);
    if (request.t === "stdin-end") return void children.get(request.id)?.stdin?.end();
    if (request.t === "ack") return flow(request.id, -request.bytes);
    const { id } = request;
    const piped = request.stdin || request.input !== undefined;
    const child = start(request.file, request.args, {
      cwd: request.cwd,
      env: request.env,
      stdio: [piped ? "pipe" : "ignore", "pipe", "pipe"],
    });
    children.set(id, child);
    child.once("spawn", () => send({ t: "spawned", id }));
    child.once("error", (error: NodeJS.ErrnoException) => {
      children.delete(id);
      send({ t: "error", id, message: error.message, code: error.code });
    });
    const relay = (fd: 1 | 2) => (data: Buffer) => {
      send({ t: "out", id, fd, data });
      flow(id, data.length);
    };
    child.stdout?.on("data", relay(1));
    child.stderr?.on("data", relay(2));
    child.stdin?.on("error", () => {});
    child.once("close", (code, signal) => {
      unacked.delete(id);
      if (!children.delete(id)) return;
      send({ t: "exit", id, code, signal });
    });
    if (request.input !== undefined) child.stdin?.end(request.input);
  });
  process.on("disconnect", () => process.exit(0));
  // Ctrl-C in a terminal reaches the whole process group: the worker shuts down and still needs its helper
  // for that (unmounts, deletes); the helper ends when the worker does (disconnect).
  process.on("SIGINT", () => {});
}

/**
 * One output stream of a command, as read here. What it is given counts as taken at once, unless its reader is
 * behind: then it counts once the reader has caught up (`drain`), which is what lets the helper pause the command.
 */
class Output extends PassThrough {
  private held = 0;

  constructor(private readonly ack: (bytes: number) => void) {
    super();
  }

  deliver(data: Uint8Array): void {
    const behind = this.held > 0;
    this.held += data.length;
    if (this.write(Buffer.from(data)) && !behind) this.release();
    else if (!behind) this.once("drain", () => this.release());
  }

  private release(): void {
    const bytes = this.held;
    this.held = 0;
    this.ack(bytes);
  }
}

interface Entry {
  stdout: Output;
  stderr: Output;
  started: { resolve: () => void; reject: (error: Error) => void };
  exit: (result: ExitStatus) => void;
}

/**
 * Starts commands from a small helper process instead of this one. Forking copies the parent's page tables,
 * which takes ~17 ms for `skiff up` (over 300 MB resident: PGlite's heap), and this process's thread stalls
 * for all of it: on every container start (mount, `runc run`) and teardown. The helper is small, forks in
 * ~4 ms, and does it on its own time. If the helper cannot run, commands start from this process.
 */
class Spawner {
  private helper: ChildProcess | undefined;
  private broken = false;
  private nextId = 1;
  private readonly entries = new Map<number, Entry>();

  spawn(file: string, args: string[], options: { cwd?: string; stdin?: boolean; input?: string } = {}): Spawned {
    const helper = this.ensureHelper();
    if (!helper) return spawnHere(file, args, options);
    const id = this.nextId++;
    const ack = (bytes: number) => this.helper?.send({ t: "ack", id, bytes } satisfies Request);
    const stdout = new Output(ack);
    const stderr = new Output(ack);
    let started!: Entry["started"];
    const startedPromise = new Promise<void>((resolve, reject) => {
      started = { resolve, reject };
    });
    startedPromise.catch(() => {});
    const exited = new Promise<ExitStatus>((resolve) => {
      this.entries.set(id, { stdout, stderr, started, exit: resolve });
    });
    this.refresh();
    helper.send({
      t: "spawn",
      id,
      file,
      args,
      env: process.env,
      stdin: options.stdin ?? false,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.input !== undefined ? { input: options.input } : {}),
    } satisfies Request);
    const stdin = options.stdin
      ? new Writable({
          write: (data: Buffer, _encoding, done) => {
            helper.send({ t: "stdin", id, data } satisfies Request);
            done();
          },
          final: (done) => {
            helper.send({ t: "stdin-end", id } satisfies Request);
            done();
          },
        })
      : undefined;
    return { stdout, stderr, ...(stdin ? { stdin } : {}), started: startedPromise, exited };
  }

  private ensureHelper(): ChildProcess | undefined {
    if (this.broken) return undefined;
    if (this.helper) return this.helper;
    try {
      const helper = spawn(process.execPath, ["-e", `(${helperMain.toString()})(require)`], {
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        serialization: "advanced",
      });
      helper.on("message", (event: Event) => this.onEvent(event));
      helper.once("exit", () => this.lost(helper));
      helper.once("error", () => this.lost(helper));
      this.helper = helper;
      this.refresh();
      return helper;
    } catch {
      this.broken = true;
      return undefined;
    }
  }

  private onEvent(event: Event): void {
    const entry = this.entries.get(event.id);
    if (!entry) return;
    switch (event.t) {
      case "spawned":
        entry.started.resolve();
        return;
      case "out":
        (event.fd === 1 ? entry.stdout : entry.stderr).deliver(event.data);
        return;
      case "error":
        this.settle(event.id, { code: null, signal: null });
        entry.started.reject(Object.assign(new Error(event.message), event.code ? { code: event.code } : {}));
        return;
      case "exit":
        this.settle(event.id, { code: event.code, signal: event.signal });
        return;
    }
  }

  private settle(id: number, result: ExitStatus): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    entry.stdout.end();
    entry.stderr.end();
    entry.exit(result);
    this.refresh();
  }

  /** The helper died: what it ran is out of reach, so it counts as killed; the next command starts a new one. */
  private lost(helper: ChildProcess): void {
    if (this.helper !== helper) return;
    this.helper = undefined;
    for (const id of [...this.entries.keys()]) {
      this.entries.get(id)?.started.reject(new Error("the worker's process helper exited"));
      this.settle(id, { code: null, signal: "SIGKILL" });
    }
  }

  /** The helper keeps this process alive only while it runs something for it. */
  private refresh(): void {
    const helper = this.helper;
    if (!helper) return;
    const channel = helper.channel as { ref(): void; unref(): void } | undefined;
    if (this.entries.size > 0) {
      helper.ref();
      channel?.ref();
    } else {
      helper.unref();
      channel?.unref();
    }
  }
}

/** The fallback: the command starts from this process. */
function spawnHere(file: string, args: string[], options: { cwd?: string; stdin?: boolean; input?: string }): Spawned {
  const piped = options.stdin || options.input !== undefined;
  const child = spawn(file, args, { cwd: options.cwd, stdio: [piped ? "pipe" : "ignore", "pipe", "pipe"] });
  const started = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  started.catch(() => {});
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    child.once("error", () => resolve({ code: null, signal: null }));
  });
  if (options.input !== undefined) child.stdin?.end(options.input);
  return {
    stdout: child.stdout!,
    stderr: child.stderr!,
    ...(options.stdin && child.stdin ? { stdin: child.stdin } : {}),
    started,
    exited,
  };
}

const spawner = new Spawner();

/** Starts `file args` through the worker's process helper (see Spawner). */
export function spawnCommand(
  file: string,
  args: string[],
  options: { cwd?: string; stdin?: boolean; input?: string } = {},
): Spawned {
  return spawner.spawn(file, args, options);
}
