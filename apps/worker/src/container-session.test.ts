import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ClaimedInput,
  decodeMessage,
  encodeMessage,
  FrameReader,
  FunctionSpec,
  type LogLine,
  lengthPrefixed,
  type RunnerMessage,
  type ServerToWorker,
  type WorkerItem,
  type WorkerMessage,
  type WorkerOutput,
  type WorkerToRunner,
} from "@skiff/protocol";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContainerSession, type SessionHost } from "./container-session.js";
import type { ContainerExit, ContainerRuntime, ContainerSpec } from "./runtime/types.js";

type Start = Extract<ServerToWorker, { t: "start" }>;

/** A session on a runtime that starts nothing, with this test playing the runner over the real socket. */
class Harness {
  readonly sent: WorkerMessage[] = [];
  readonly outputs: WorkerOutput[] = [];
  readonly items: WorkerItem[] = [];
  /** Which the session queued, items or outputs, in order. */
  readonly queued: ("item" | "output")[] = [];
  readonly claims: number[] = [];
  readonly toRunner: WorkerToRunner[] = [];
  readonly logs: LogLine[] = [];
  /** The (token, hash) pairs the session asked the server about, and the blobs that token may read. */
  readonly asked: [string, string][] = [];
  readonly readable = new Set<string>();
  /** What the session asked the runtime to start. */
  container: ContainerSpec | undefined;
  session!: ContainerSession;
  private exit!: (exit: ContainerExit) => void;
  private runner!: Socket;
  private rid = 0;

  constructor(private readonly stateDir: string) {}

  async start(spec: Partial<FunctionSpec> = {}, options: { ready?: boolean; prepareMs?: number } = {}): Promise<void> {
    const exited = new Promise<ContainerExit>((resolve) => {
      this.exit = resolve;
    });
    const runtime: ContainerRuntime = {
      name: "process",
      available: async () => ({ ok: true }),
      start: async (container) => {
        this.container = container;
        // As a real runtime's, its output ends once it exited.
        const [stdout, stderr] = [new PassThrough(), new PassThrough()];
        void exited.then(() => {
          stdout.end();
          stderr.end();
        });
        return { id: container.id, stdout, stderr, exited };
      },
      kill: async () => this.exit({ exitCode: null, signal: "SIGKILL", oomKilled: false }),
      cleanupStale: async () => {},
    };
    const host: SessionHost = {
      runtime,
      log: pino({ level: "silent" }),
      send: (message) => this.sent.push(message),
      queueOutput: (output) => {
        this.queued.push("output");
        this.outputs.push(output);
      },
      queueItem: (item) => {
        this.queued.push("item");
        this.items.push(item);
      },
      queueLog: (line) => this.logs.push(line),
      claim: (_session, max) => this.claims.push(max),
      mayRead: async (token, hash) => {
        this.asked.push([token, hash]);
        return this.readable.has(hash);
      },
      putBlob: async () => "",
      prepare: async () => {
        await sleep(options.prepareMs ?? 0);
        return {
          runnerDir: this.stateDir,
          bundleDir: this.stateDir,
          nodeDir: this.stateDir,
          rootfs: this.stateDir,
          image: { layers: [], mounts: [], env: {}, cwd: "/", user: undefined, release: () => {} },
        };
      },
      stateDir: this.stateDir,
      serverUrl: "http://127.0.0.1:9",
      stopping: () => {},
      ended: () => {},
    };
    const start: Start = {
      t: "start",
      containerId: "ct-session-test",
      appId: "app",
      appName: "app",
      functionId: "fn",
      bundleHash: "0".repeat(64),
      spec: FunctionSpec.parse({
        name: "f",
        kind: "function",
        timeoutMs: 60_000,
        retries: { maxRetries: 0, backoffCoefficient: 2, initialDelayMs: 1000, maxDelayMs: 60_000 },
        cpu: 1,
        memoryMiB: 128,
        image: { base: "debian-bookworm", nodeMajor: 20 },
        minContainers: 0,
        maxContainers: 1,
        bufferContainers: 0,
        scaledownWindowMs: 60_000,
        maxInputs: 2,
        ...spec,
      }),
      env: {},
      secrets: {},
      appEnv: "main",
      token: "ct:secret",
      functionIds: {},
      bucketCredentials: {},
    };
    this.session = new ContainerSession(start, host);
    void this.session.run();
    const path = join(this.stateDir, "containers", start.containerId, "runner.sock");
    for (let i = 0; !this.runner; i++) {
      this.runner = await new Promise<Socket>((resolve, reject) => {
        const socket = connect(path, () => resolve(socket)).once("error", reject);
      }).catch(async (error: unknown) => {
        if (i > 100) throw error;
        await sleep(20);
        return undefined as unknown as Socket;
      });
    }
    const reader = new FrameReader();
    this.runner.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) this.toRunner.push(decodeMessage(frame) as WorkerToRunner);
    });
    if (options.ready !== false) this.fromRunner({ t: "ready" });
  }

  /** The container is killed by its memory limit. */
  oom(): void {
    this.exit({ exitCode: null, signal: "SIGKILL", oomKilled: true });
  }

  fromRunner(message: RunnerMessage): void {
    this.runner.write(lengthPrefixed(encodeMessage(message)));
  }

  /** The server answers the last claim with these input ids (their arguments a blob, if given). */
  answer(ids: string[], blob?: string): void {
    const inputs: ClaimedInput[] = ids.map((inputId) => ({
      inputId,
      attempt: 1,
      args: blob ? { blob } : { inline: encodeMessage([]) },
      timeoutMs: 60_000,
    }));
    this.session.deliver({ t: "inputs", rid: this.rid++, inputs, shutdown: false });
  }

  /** The runner finishes these inputs, then asks for `next` more, as it does in one write. */
  finish(ids: string[], next: number): void {
    for (const inputId of ids) {
      this.fromRunner({ t: "output", inputId, attempt: 1, status: "success", retryable: true, data: encodeMessage(1) });
    }
    this.fromRunner({ t: "next", max: next });
  }

  /** Input ids the runner received, in order. */
  received(): string[] {
    return this.toRunner.flatMap((message) => (message.t === "inputs" ? message.inputs.map((i) => i.inputId) : []));
  }

  end(): void {
    this.runner.destroy();
    this.exit({ exitCode: 0, signal: null, oomKilled: false });
  }
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await sleep(10);
  expect(check()).toBe(true);
};

/** Starts the session; the runner asks for two inputs and gets "a" and "b", which it has not finished. */
async function firstTurn(harness: Harness): Promise<void> {
  await harness.start();
  harness.fromRunner({ t: "next", max: 2 });
  await until(() => harness.claims.length === 1);
  harness.answer(["a", "b"]);
  await until(() => harness.received().length === 2);
}

describe("container session", () => {
  let dir: string;
  let harness: Harness;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    harness = new Harness(dir);
  });
  afterEach(async () => {
    harness.end();
    await rm(dir, { recursive: true, force: true });
  });

  it("claims short inputs a turn ahead and refills the runner from what it holds", async () => {
    await harness.start();
    harness.fromRunner({ t: "next", max: 2 });
    await until(() => harness.claims.length === 1);
    // Nothing has run yet: no claiming ahead.
    expect(harness.claims).toEqual([2]);
    harness.answer(["a", "b"]);
    await until(() => harness.received().length === 2);

    // Both finish at once: fast, so the worker now claims the runner's two and two more.
    harness.finish(["a", "b"], 2);
    await until(() => harness.claims.length === 2);
    expect(harness.claims[1]).toBe(4);
    harness.answer(["c", "d", "e", "f"]);
    await until(() => harness.received().length === 4);
    expect(harness.received()).toEqual(["a", "b", "c", "d"]);
    // The two held back count as held: heartbeats keep their leases.
    expect(harness.session.inFlightRefs().map((ref) => ref.inputId)).toEqual(["c", "d", "e", "f"]);

    // The next turn comes from the worker's hand, with no claim between.
    const claimsBefore = harness.claims.length;
    harness.finish(["c", "d"], 2);
    await until(() => harness.received().length === 6);
    expect(harness.received().slice(4)).toEqual(["e", "f"]);
    expect(harness.claims.length).toBe(claimsBefore + 1);
    expect(harness.outputs.map((o) => o.inputId)).toEqual(["a", "b", "c", "d"]);
  });

  it("returns what it holds when the container stops, and drops cancelled inputs without a kill", async () => {
    await firstTurn(harness);
    harness.finish(["a", "b"], 2);
    await until(() => harness.claims.length === 2);
    // The runner is busy with c and d; e, f and g wait in the worker.
    harness.answer(["c", "d", "e", "f", "g"]);
    await until(() => harness.received().length === 4);

    harness.session.cancel([{ inputId: "e", attempt: 1 }]);
    expect(harness.session.accepting).toBe(true);
    expect(harness.session.inFlightRefs().map((ref) => ref.inputId)).toEqual(["c", "d", "f", "g"]);

    harness.session.stop("idle");
    const returned = harness.sent.find((m): m is Extract<WorkerMessage, { t: "return" }> => m.t === "return");
    expect(returned?.inputs.map((ref) => ref.inputId)).toEqual(["f", "g"]);
    await until(() => harness.toRunner.some((m) => m.t === "shutdown"));
  });

  it("gives the token to the runner's connection only, first thing, and never through the environment", async () => {
    await harness.start();
    await until(() => harness.toRunner.length > 0);
    expect(harness.toRunner[0]).toEqual({ t: "hello", token: "ct:secret", containerId: "ct-session-test" });
    expect(JSON.stringify(harness.container?.env)).not.toContain("ct:secret");
    // Code in the container connecting to the runner's socket gets nothing, and the runner keeps its connection.
    const path = join(dir, "containers", "ct-session-test", "runner.sock");
    const other = await new Promise<Socket>((resolve, reject) => {
      const socket = connect(path, () => resolve(socket)).once("error", reject);
    });
    const received: Buffer[] = [];
    other.on("data", (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => other.once("close", resolve));
    expect(received).toEqual([]);
    harness.fromRunner({ t: "next", max: 1 });
    await until(() => harness.claims.length === 1);
  });

  it("hands blob arguments on as hashes, and passes on a result blob only if the container's token may read it", async () => {
    await harness.start();
    harness.fromRunner({ t: "next", max: 2 });
    await until(() => harness.claims.length === 1);
    const [mine, theirs, args] = ["a".repeat(64), "b".repeat(64), "c".repeat(64)];
    harness.answer(["a", "b"], args);
    await until(() => harness.received().length === 2);
    const sent = harness.toRunner.find((message) => message.t === "inputs");
    expect(sent?.t === "inputs" && sent.inputs.map((input) => input.args)).toEqual([{ blob: args }, { blob: args }]);

    harness.readable.add(mine);
    const output = (inputId: string, blob: string): RunnerMessage => ({
      t: "output",
      inputId,
      attempt: 1,
      status: "success",
      retryable: true,
      data: { blob },
    });
    harness.fromRunner(output("a", mine));
    harness.fromRunner(output("b", theirs));
    await until(() => harness.outputs.length === 2);
    expect(harness.asked).toEqual([
      ["ct:secret", mine],
      ["ct:secret", theirs],
    ]);
    const byId = new Map(harness.outputs.map((o) => [o.inputId, o]));
    expect(byId.get("a")).toMatchObject({ status: "success", data: { blob: mine } });
    expect(byId.get("b")).toMatchObject({ status: "failure", code: "INTERNAL", retryable: false });
    expect(JSON.stringify(byId.get("b")?.data)).not.toContain(theirs);
  });

  it("never claims ahead of inputs that run long", async () => {
    await firstTurn(harness);
    await sleep(60);
    harness.finish(["a", "b"], 2);
    await until(() => harness.claims.length === 2);
    expect(harness.claims[1]).toBe(2);
  });
});

describe("web container session", () => {
  let dir: string;
  let harness: Harness;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    harness = new Harness(dir);
  });
  afterEach(async () => {
    harness.end();
    await rm(dir, { recursive: true, force: true });
  });

  it("tells the runner its web socket, takes requests once ready, and never claims inputs", async () => {
    await harness.start(
      { web: { kind: "fetch", label: "f", docs: false, requiresProxyAuth: false } },
      { ready: false },
    );
    expect(harness.container?.env.SKIFF_WEB_SOCKET).toBe("/.skiff/sock/web.sock");
    expect(harness.session.webSocketPath).toBe(join(dir, "containers", "ct-session-test", "web.sock"));
    expect(harness.session.acceptsRequests).toBe(false);
    harness.fromRunner({ t: "ready" });
    await until(() => harness.session.acceptsRequests);
    // A runner that asked anyway gets nothing: a web function's requests come through the relay.
    harness.fromRunner({ t: "next", max: 4 });
    await sleep(50);
    expect(harness.claims).toEqual([]);
    harness.session.stop("idle");
    expect(harness.session.acceptsRequests).toBe(false);
    expect(harness.sent.some((message) => message.t === "unclaim" || message.t === "return")).toBe(false);
  });

  it("is idle only a scaledown window after its last request ended", async () => {
    await harness.start({
      scaledownWindowMs: 1500,
      web: { kind: "fetch", label: "f", docs: false, requiresProxyAuth: false },
    });
    const idle = () => harness.sent.some((message) => message.t === "idle");
    harness.session.beginRequest();
    // Idle checks run each second: two pass while the request is open.
    await sleep(2200);
    expect(idle()).toBe(false);
    harness.session.endRequest();
    await sleep(1000);
    expect(idle()).toBe(false);
    await until(idle);
  });
});

describe("a function without web", () => {
  it("gets no web socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    const harness = new Harness(dir);
    try {
      await harness.start();
      expect(harness.container?.env.SKIFF_WEB_SOCKET).toBeUndefined();
      expect(harness.session.webSocketPath).toBeUndefined();
      expect(harness.session.acceptsRequests).toBe(false);
    } finally {
      harness.end();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("container session start", () => {
  it("reports how long each phase of its start took: its own, and the runner's", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    const harness = new Harness(dir);
    try {
      await harness.start({}, { ready: false, prepareMs: 30 });
      await sleep(60);
      harness.fromRunner({ t: "ready", phases: { load: 20 } });
      await until(() => harness.sent.some((message) => message.t === "started"));
      const started = harness.sent.find((message) => message.t === "started");
      expect(started).toMatchObject({ containerId: "ct-session-test", start: { kind: "booted" } });
      const { phases } = (started as Extract<WorkerMessage, { t: "started" }>).start!;
      expect(Object.keys(phases)).toEqual(["prepare", "create", "boot", "load"]);
      expect(phases.prepare).toBeGreaterThanOrEqual(25);
      expect(phases.load).toBe(20);
      // The runner said ready 60 ms after the container was made; 20 of them were its own loading.
      expect(phases.boot).toBeGreaterThanOrEqual(30);
    } finally {
      harness.end();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("says out-of-memory, with the limit, when the container is killed for memory while it starts", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    const harness = new Harness(dir);
    try {
      await harness.start({}, { ready: false });
      harness.oom();
      await until(() => harness.sent.some((message) => message.t === "stopped"));
      expect(harness.sent.find((message) => message.t === "stopped")).toMatchObject({
        reason: "oom",
        message: "the container ran out of memory (limit 128 MiB) while starting: raise `memory`",
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("stops a web server that never listens at its startupTimeout, saying so in the stop message and the logs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    const harness = new Harness(dir);
    try {
      const web = { kind: "server" as const, label: "ui", docs: false, requiresProxyAuth: false, port: 8000 };
      await harness.start({ startupTimeoutMs: 100, web }, { ready: false });
      await until(() => harness.sent.some((message) => message.t === "stopped"));
      const expected =
        "the web server did not accept connections on port 8000 within its startupTimeout (100 ms): make `start` listen on port 8000 (on 127.0.0.1 or 0.0.0.0), or raise `startupTimeout`";
      expect(harness.sent.find((message) => message.t === "stopped")).toMatchObject({
        reason: "init-failed",
        message: expected,
      });
      expect(harness.logs).toContainEqual(expect.objectContaining({ stream: "system", line: expected }));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("container session: generators", () => {
  let dir: string;
  let harness: Harness;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-session-"));
    harness = new Harness(dir);
  });
  afterEach(async () => {
    harness.end();
    await rm(dir, { recursive: true, force: true });
  });

  it("relays a generator's values in order and before its output, its caller's credit, and a cancel as a stop", async () => {
    const blob = "b".repeat(64);
    harness.readable.add(blob);
    await harness.start();
    harness.fromRunner({ t: "next", max: 2 });
    await until(() => harness.claims.length === 1);
    const gen = (inputId: string): ClaimedInput => ({
      inputId,
      attempt: 1,
      args: { inline: encodeMessage([]) },
      timeoutMs: 60_000,
      gen: true,
    });
    harness.session.deliver({ t: "inputs", rid: 0, inputs: [gen("g"), gen("h")], shutdown: false });
    await until(() => harness.received().length === 2);
    const delivered = harness.toRunner.flatMap((m) => (m.t === "inputs" ? m.inputs : []));
    expect(delivered.map((input) => input.gen)).toEqual([true, true]);

    // A value the runner put as a blob (checked with the server first), then an inline one, then the output.
    harness.fromRunner({ t: "item", inputId: "g", attempt: 1, index: 0, data: { blob } });
    harness.fromRunner({ t: "item", inputId: "g", attempt: 1, index: 1, data: encodeMessage("two") });
    harness.fromRunner({ t: "item", inputId: "g", attempt: 2, index: 0, data: encodeMessage("stale") });
    harness.fromRunner({
      t: "output",
      inputId: "g",
      attempt: 1,
      status: "success",
      retryable: true,
      data: encodeMessage(2),
    });
    await until(() => harness.outputs.length === 1);
    expect(harness.queued).toEqual(["item", "item", "output"]);
    expect(harness.items.map((item) => [item.index, item.data])).toEqual([
      [0, { blob }],
      [1, { inline: encodeMessage("two") }],
    ]);

    harness.session.credit([
      { inputId: "h", attempt: 1, consumed: 8 },
      { inputId: "h", attempt: 2, consumed: 8 },
      { inputId: "nope", attempt: 1, consumed: 8 },
    ]);
    harness.session.cancel([{ inputId: "h", attempt: 1 }]);
    await until(() => harness.toRunner.some((m) => m.t === "cancel"));
    expect(harness.toRunner.filter((m) => m.t === "credit" || m.t === "cancel")).toEqual([
      { t: "credit", inputId: "h", attempt: 1, consumed: 8 },
      { t: "cancel", inputId: "h", attempt: 1 },
    ]);
    // Asked to stop, not killed with its container.
    expect(harness.session.accepting).toBe(true);
  });
});
