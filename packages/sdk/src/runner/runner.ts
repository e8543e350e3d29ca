import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { globalAgent as httpAgent } from "node:http";
import { connect, type Socket } from "node:net";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import type { RunnerData, RunnerInput, RunnerMessage, StartPhases, WorkerToRunner } from "@skiff/protocol";
import { attemptRefOf } from "@skiff/protocol/attempt-key";
import { INLINE_PAYLOAD_LIMIT, RESTORED_MARK } from "@skiff/protocol/constants";
import { decodeMessage, encodeMessage, FrameReader, writeFrames } from "@skiff/protocol/frame";
import { collectApp } from "../app.js";
import { Client } from "../client.js";
import { marksOf } from "../cls.js";
import { decodeValue, encodeValue } from "../codec.js";
import { getContext, type SkiffContext, setContext } from "../context.js";
import { isNonRetriable } from "../errors.js";
import { isAsyncGeneratorFunction } from "../generator.js";
import { requestTimeoutMs, type WebDeclaration } from "../web/web-options.js";
import { GeneratorWindow } from "./generator-window.js";
import { mapStacksOf } from "./stack-map.js";
import type { WebTarget } from "./web/start-web.js";

export interface RunnerOptions {
  /** Unix socket the worker listens on. */
  socketPath: string;
  /** The user's bundle (ESM, inline source map). */
  bundlePath: string;
  /** A function's or a class's name. */
  functionName: string;
  maxInputs: number;
  /** A class pool's parameter values (JSON). */
  params?: string | undefined;
  /** Gather inputs into lists for a batched function. */
  batch?: { maxBatchSize: number; waitMs: number } | undefined;
  /**
   * How code in the container calls functions: the worker's relay to the server. The container's token comes
   * from the worker over `socketPath` (its first message), never from the environment.
   */
  api?: { socketPath: string } | undefined;
  /** The container's id, for `currentContainerId()`. */
  containerId?: string | undefined;
  /** The app: its id, environment and function ids by name (`other.remote()` finds its id here). */
  app?: { id: string; env: string; functionIds: Record<string, string> } | undefined;
  /** A web function: the Unix socket to serve its HTTP requests on, instead of asking for inputs. */
  webSocket?: string | undefined;
  /** Booted to be snapshotted (see RunnerEnvironment.SKIFF_SNAPSHOT). */
  snapshot?: boolean | undefined;
}

/** The loaded code: runs one input's arguments, and the `exit` hooks at shutdown; or a web function. */
interface Loaded {
  call(args: unknown[]): unknown;
  /**
   * Whether these arguments call an async generator (a generator function, or a class's generator method);
   * undefined for a method the class does not have (its call says so).
   */
  isGenerator(args: unknown[]): boolean | undefined;
  exit(): Promise<void>;
  /** In a container restored from a snapshot: the `enter` hooks that did not run before it (`snap: false`). */
  afterRestore(): Promise<void>;
  web?: WebTarget;
}

/**
 * The program inside every container: loads the user's bundle, then pulls inputs from the worker over a
 * Unix socket, runs up to `maxInputs` at once, and sends each output back.
 */
export async function runRunner(options: RunnerOptions): Promise<void> {
  const volumes = new VolumeRequests();
  const connection = open(options.socketPath, (done) => volumes.answer(done));
  volumes.connected(connection.then(({ socket }) => socket));
  // Connecting (slow through gVisor's gofer) and loading the user's code overlap; a call the code makes before
  // the worker's hello has brought the token waits for it (see SkiffContext.tokenReady).
  const phases: StartPhases = {};
  const loading = performance.now();
  const [first, loadedFirst] = await Promise.all([
    connection,
    load(
      options,
      connection.then(({ token }) => token),
      (op, name) => volumes.request(op, name),
      phases,
    ).then(
      (code) => {
        phases.load = msSince(loading) - (phases.enter ?? 0);
        return { code };
      },
      (error: unknown) => ({ error }),
    ),
  ]);
  let loaded: { code: Loaded } | { error: unknown } = loadedFirst;
  let { socket, token, early, setHandler } = first;
  if (options.snapshot && "code" in loaded) {
    // The snapshot is taken while this waits; what follows runs in each container restored from it.
    ({ socket, token, early, setHandler } = await snapshotAndRestore(options.socketPath, socket, volumes));
    // Restored: the code was loaded in the snapshot; only the other enter hooks run here.
    const entering = performance.now();
    try {
      await loaded.code.afterRestore();
    } catch (error) {
      loaded = { error };
    }
    Object.assign(phases, { load: 0, enter: msSince(entering) });
  }
  // Large arguments and results move as blobs through api.sock with the container's token, straight between
  // this process and the server's blob store: they never cross runner.sock, and the server checks that this
  // container's workspace may read them.
  const blobs = options.api ? new Client({ serverUrl: `unix:${options.api.socketPath}`, token }) : undefined;
  const argsOf = async (input: RunnerInput): Promise<Uint8Array> => {
    if (input.args instanceof Uint8Array) return input.args;
    if (!blobs) throw new Error("skiff runner: an input's arguments are a blob, and this container has no api.sock");
    return blobs.getBlob(input.args.blob);
  };
  /** An output's data: a large one goes up as a blob, or inline (the worker stores it) if that fails. */
  const dataOf = async (bytes: Uint8Array): Promise<RunnerData> => {
    if (bytes.length <= INLINE_PAYLOAD_LIMIT || !blobs) return bytes;
    return blobs.putBlob(bytes).then(
      (blob) => ({ blob }),
      () => bytes,
    );
  };
  const success = async (input: RunnerInput, value: unknown): Promise<RunnerMessage> => ({
    t: "output",
    ...attemptRefOf(input),
    status: "success",
    retryable: true,
    data: await dataOf(encodeValue(value)),
  });
  const failure = async (
    input: RunnerInput,
    error: unknown,
    retryable = !isNonRetriable(error),
  ): Promise<RunnerMessage> => ({
    t: "output",
    ...attemptRefOf(input),
    status: "failure",
    retryable,
    data: await dataOf(encodeError(error)),
  });
  let active = 0;
  let asked = false;
  let shuttingDown = false;
  // Messages of one turn (the outputs of inputs that finished together, then the request for more) go in
  // one write: every syscall is expensive under gVisor.
  let outgoing: Uint8Array[] = [];
  let flushScheduled = false;
  /** Slots freed this turn: one `next` for all of them goes out with the turn's outputs. */
  let wantMore = false;
  const scheduleFlush = () => {
    if (flushScheduled) return;
    flushScheduled = true;
    setImmediate(flushOutgoing);
  };
  const send = (message: RunnerMessage) => {
    outgoing.push(encodeMessage(message));
    scheduleFlush();
  };
  const flushOutgoing = () => {
    flushScheduled = false;
    if (wantMore) {
      wantMore = false;
      if (!asked && !shuttingDown && active < options.maxInputs) {
        asked = true;
        outgoing.push(encodeMessage({ t: "next", max: options.maxInputs - active }));
      }
    }
    const frames = outgoing;
    outgoing = [];
    if (frames.length > 0) writeFrames(socket, frames);
  };
  const end = () => {
    flushOutgoing();
    socket.end();
  };
  if ("error" in loaded) {
    send({ t: "init-failed", error: encodeError(loaded.error) });
    end();
    process.exitCode = 1;
    return;
  }
  const { code } = loaded;
  if (options.webSocket || code.web) {
    await serveWeb(options, code, { socket, early, setHandler, send, end }, phases);
    return;
  }

  let exiting = false;
  // After the last input: the `exit` hooks, then the socket closes and the worker sees the runner end.
  const finish = () => {
    if (exiting) return;
    exiting = true;
    void code.exit().finally(end);
  };
  // Slots freed in the same tick become one request: fast inputs must not cost a claim each.
  const askForMore = () => {
    wantMore = true;
    scheduleFlush();
  };

  const done = (count: number) => {
    active -= count;
    if (shuttingDown && active === 0) finish();
    askForMore();
  };

  /** How many values each running generator attempt's caller has taken, by input id (see GENERATOR_WINDOW). */
  const credits = new Map<
    string,
    { attempt: number; window: GeneratorWindow; cancelled: boolean; wake: (() => void) | undefined }
  >();

  /**
   * Runs a generator: each value goes to the worker as an `item` as it is yielded, at most GENERATOR_WINDOW
   * values or GENERATOR_WINDOW_BYTES ahead of what the caller took (the generator waits, suspended at its
   * `yield`, for the caller's credit). Its output is the number of values, after the last one.
   */
  const streamGenerator = async (input: RunnerInput, generator: AsyncGenerator<unknown>): Promise<RunnerMessage> => {
    const credit = {
      attempt: input.attempt,
      window: new GeneratorWindow(),
      cancelled: false,
      wake: undefined as (() => void) | undefined,
    };
    credits.set(input.inputId, credit);
    let index = 0;
    let ended = false;
    try {
      for (;;) {
        while (credit.window.full && !credit.cancelled) {
          await new Promise<void>((resolve) => {
            credit.wake = resolve;
          });
        }
        if (credit.cancelled) {
          // Its `finally` blocks run; nobody waits for its values any more.
          ended = true;
          await generator.return(undefined);
          return await failure(input, new Error("the generator was cancelled by its caller"), false);
        }
        const step = await generator.next();
        if (step.done) break;
        const data = await dataOf(encodeValue(step.value));
        send({ t: "item", ...attemptRefOf(input), index, data });
        credit.window.add(data instanceof Uint8Array ? data.length : 0);
        index++;
      }
      ended = true;
      return await success(input, index);
    } catch (error) {
      ended = true;
      return await failure(input, error);
    } finally {
      credits.delete(input.inputId);
      // A value that could not be encoded ends the call: let the generator run its `finally` blocks.
      if (!ended) void generator.return(undefined).catch(() => {});
    }
  };

  const runOne = async (input: RunnerInput) => {
    let output: RunnerMessage;
    try {
      const args = decodeValue<unknown[]>(await argsOf(input));
      const generator = code.isGenerator(args);
      if (generator !== undefined && generator !== (input.gen === true))
        output = await failure(input, callMismatch(generator), false);
      else if (generator) output = await streamGenerator(input, code.call(args) as AsyncGenerator<unknown>);
      else output = await success(input, await code.call(args));
    } catch (error) {
      output = await failure(input, error);
    }
    send(output);
    done(1);
  };

  // A batched function: inputs gather until the batch is full or the first has waited `waitMs`; one batch
  // runs at a time (it counts as `maxInputs` of load), and the next gathers once it is done.
  const batch = options.batch;
  const gathered: RunnerInput[] = [];
  let batchTimer: NodeJS.Timeout | undefined;
  let batchRunning = false;
  const runBatch = async () => {
    clearTimeout(batchTimer);
    batchTimer = undefined;
    if (batchRunning || gathered.length === 0) return;
    const inputs = gathered.splice(0, batch!.maxBatchSize);
    batchRunning = true;
    const outputs: RunnerMessage[] = [];
    try {
      const args = await Promise.all(inputs.map(argsOf));
      const results = await code.call([args.map((bytes) => decodeValue<unknown[]>(bytes)[0])]);
      if (!Array.isArray(results) || results.length !== inputs.length) {
        const got = Array.isArray(results) ? `${results.length} results` : typeof results;
        throw new Error(
          `a batched function must return one result per item: it got ${inputs.length} and returned ${got}`,
        );
      }
      for (const [i, input] of inputs.entries()) outputs.push(await success(input, results[i]));
    } catch (error) {
      outputs.length = 0;
      for (const input of inputs) outputs.push(await failure(input, error));
    }
    for (const output of outputs) send(output);
    batchRunning = false;
    if (gathered.length >= batch!.maxBatchSize) void runBatch();
    else if (gathered.length > 0) batchTimer = setTimeout(runBatch, batch!.waitMs);
    done(inputs.length);
  };
  const gather = (inputs: RunnerInput[]) => {
    gathered.push(...inputs);
    if (gathered.length >= batch!.maxBatchSize) void runBatch();
    else batchTimer ??= setTimeout(runBatch, batch!.waitMs);
  };

  const onMessage = (message: WorkerToRunner) => {
    if (message.t === "hello" || message.t === "volume-done") return;
    if (message.t === "credit" || message.t === "cancel") {
      const credit = credits.get(message.inputId);
      if (!credit || credit.attempt !== message.attempt) return;
      if (message.t === "cancel") credit.cancelled = true;
      else credit.window.credit(message.consumed);
      credit.wake?.();
      return;
    }
    if (message.t === "shutdown") {
      shuttingDown = true;
      if (batch && gathered.length > 0) void runBatch();
      if (active === 0) finish();
      return;
    }
    asked = false;
    active += message.inputs.length;
    if (batch) gather(message.inputs);
    else for (const input of message.inputs) void runOne(input);
    askForMore();
  };
  for (const message of early) onMessage(message);
  setHandler(onMessage);
  socket.on("close", () => exitWhenFlushed(0));
  send({ t: "ready", phases });
  askForMore();
}

/**
 * A web function's runner: serves HTTP on the web socket (the server's code loaded only here, so other
 * functions' containers never load it), says `ready` on runner.sock once it listens, and never asks for
 * inputs; on `shutdown` it stops taking requests and ends once those in flight are answered.
 */
async function serveWeb(
  options: RunnerOptions,
  code: Loaded,
  runner: {
    socket: Socket;
    early: WorkerToRunner[];
    setHandler(handler: (message: WorkerToRunner) => void): void;
    send(message: RunnerMessage): void;
    end(): void;
  },
  phases: StartPhases,
): Promise<void> {
  const fail = (message: string) => {
    runner.send({ t: "init-failed", error: encodeError(new Error(message)) });
    runner.end();
    process.exitCode = 1;
  };
  if (!code.web) {
    return fail(`function "${options.functionName}" does not answer HTTP, but the worker started it as a web function`);
  }
  if (!options.webSocket) {
    return fail(
      `function "${options.functionName}" answers HTTP, but the worker gave it no web socket: update the worker`,
    );
  }
  const { startWeb } = await import("./web/start-web.js");
  let serving: Awaited<ReturnType<typeof startWeb>>;
  try {
    const starting = performance.now();
    serving = await startWeb(code.web, options.webSocket, options.maxInputs);
    phases.serve = msSince(starting);
  } catch (error) {
    runner.send({ t: "init-failed", error: encodeError(error) });
    runner.end();
    process.exitCode = 1;
    return;
  }
  let stopping = false;
  const onMessage = (message: WorkerToRunner) => {
    if (message.t !== "shutdown" || stopping) return;
    stopping = true;
    void serving
      .close()
      .then(() => code.exit())
      .finally(runner.end);
  };
  for (const message of runner.early) onMessage(message);
  runner.setHandler(onMessage);
  runner.socket.on("close", () => exitWhenFlushed(0));
  runner.send({ t: "ready", phases });
}

/**
 * Loads the user's bundle and finds the function; for a class, makes the instance with the pool's
 * parameter values and runs its `enter` hooks (a throw there fails the container's start).
 */
async function load(
  options: RunnerOptions,
  token: Promise<string>,
  volumes: NonNullable<SkiffContext["volumes"]>,
  phases: StartPhases,
): Promise<Loaded> {
  // Stacks point at the user's .ts lines; the bundle's source map is read the first time a stack is formatted.
  mapStacksOf(options.bundlePath);
  const context: SkiffContext = {
    v: 1,
    where: "container",
    functionIds: options.app?.functionIds ?? {},
    ...(options.app ? { appId: options.app.id, env: options.app.env } : {}),
    ...(options.containerId ? { containerId: options.containerId } : {}),
    ...(options.api ? { serverUrl: `unix:${options.api.socketPath}` } : {}),
    volumes,
  };
  if (options.api) {
    // A lost connection ends the runner (runRunner); calls made meanwhile go without a token and are refused.
    context.tokenReady = token.then(
      (value) => {
        context.token = value;
      },
      () => {},
    );
  }
  setContext(context);
  const exports = (await import(pathToFileURL(options.bundlePath).href)) as Record<string, unknown>;
  const collected = collectApp(exports, "the bundle");
  const fn = collected.functions.get(options.functionName);
  const web = (fn as { web?: WebDeclaration } | undefined)?.web;
  if (fn && web) {
    const { fetch, start } = fn as { fetch?: WebTarget["fetch"]; start?: WebTarget["start"] };
    const call = () => {
      throw new Error(`function "${options.functionName}" answers HTTP requests, not calls`);
    };
    return {
      call,
      isGenerator: () => false,
      exit: async () => {},
      afterRestore: async () => {},
      web: { web, fetch, start, timeoutMs: requestTimeoutMs(fn.options) },
    };
  }
  if (fn?.handler) {
    const handler = fn.handler as (...args: unknown[]) => unknown;
    const generator = isAsyncGeneratorFunction(handler);
    return {
      call: (args) => handler(...args),
      isGenerator: () => generator,
      exit: async () => {},
      afterRestore: async () => {},
    };
  }
  const cls = collected.classes.get(options.functionName);
  if (!cls?.ctor) throw new Error(`the bundle has no function "${options.functionName}": was it renamed? run again`);
  const instance = new cls.ctor() as Record<string, unknown>;
  Object.assign(instance, options.params ? JSON.parse(options.params) : {});
  const marks = marksOf(cls.ctor);
  const hook = (name: string) => (instance[name] as () => unknown).call(instance);
  // Snap hooks first (before a snapshot, when one is taken), then the others, each in the order declared.
  const snapHooks = marks.enter.filter((name) => marks.snapEnter.includes(name));
  const otherHooks = marks.enter.filter((name) => !marks.snapEnter.includes(name));
  const runOthers = async () => {
    for (const name of otherHooks) await hook(name);
  };
  const entering = performance.now();
  for (const name of snapHooks) await hook(name);
  if (!options.snapshot) await runOthers();
  phases.enter = msSince(entering);
  const methods = new Set(marks.methods);
  return {
    afterRestore: runOthers,
    call: ([name, ...args]) => {
      if (typeof name !== "string" || !methods.has(name)) {
        throw new Error(`class ${options.functionName} has no @method() ${String(name)}: was it renamed? deploy again`);
      }
      return (instance[name] as (...a: unknown[]) => unknown).apply(instance, args);
    },
    isGenerator: ([name]) =>
      typeof name === "string" && methods.has(name) ? isAsyncGeneratorFunction(instance[name]) : undefined,
    exit: async () => {
      for (const name of marks.exit) {
        try {
          await hook(name);
        } catch (error) {
          console.error(`skiff: the exit hook ${name} threw:`, error);
        }
      }
    },
  };
}

/** Whole milliseconds since `start` (a performance.now()): a phase of the cold start, for `ready`. */
function msSince(start: number): number {
  return Math.round(performance.now() - start);
}

/** Why an input was refused: a generator called without `.remoteGen`, or a plain function called with it. */
function callMismatch(generator: boolean): Error {
  const error = new Error(
    generator
      ? "this is an async generator function: iterate its values with `for await (const value of fn.remoteGen(...args))`; .remote, .spawn, .map, .starmap and .forEach are for plain functions (a generator's call also does not survive a server restart)"
      : "this is not an async generator function: call it with .remote(...args); .remoteGen is for `async function*` handlers",
  );
  error.name = "SkiffError";
  return error;
}

function encodeError(error: unknown): Uint8Array {
  explainMissingModule(error);
  try {
    return encodeValue(error instanceof Error ? error : new Error(`a non-Error value was thrown: ${String(error)}`));
  } catch {
    return encodeValue(new Error(String(error)));
  }
}

/** A package neither bundled nor in the image: say which, and how to put it in the image. */
function explainMissingModule(error: unknown): void {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") return;
  const name = /Cannot find (?:package|module) '([^']+)'/.exec(error.message)?.[1];
  if (!name || name.startsWith("/")) return;
  const pkg = name.startsWith("@") ? name.split("/").slice(0, 2).join("/") : name.split("/")[0];
  error.message =
    `the package "${pkg}" is neither in the bundle nor in the function's image: ` +
    `install it in the image with \`image: Image.debianSlim().npmInstall("${pkg}")\`, ` +
    `or install it where you run skiff so that it is bundled (${error.message})`;
}

/** The runner's connection to the worker once the worker's hello has come. */
interface Connection {
  socket: Socket;
  /** The container's token, from the hello. */
  token: string;
  /** After a restore from a snapshot: this container's id (the snapshot was taken in another). */
  containerId?: string | undefined;
  /** Messages that came with the hello, before a handler was set. */
  early: WorkerToRunner[];
  setHandler(handler: (message: WorkerToRunner) => void): void;
}

/**
 * `volume.commit()` and `reload()` from the code inside: each goes to the worker (which holds the mounts) as a
 * `volume` message, and its `volume-done` answers it.
 */
class VolumeRequests {
  private socket: Promise<Socket> | undefined;
  private rid = 0;
  private readonly waiting = new Map<number, { resolve(version: { version: number }): void; reject(e: Error): void }>();

  connected(socket: Promise<Socket>): void {
    this.socket = socket;
  }

  async request(op: "commit" | "reload", name: string): Promise<{ version: number }> {
    // gVisor may close a file's host handle some time after the code's close() returned; until it does, the
    // worker's mount does not see the file as closed, and a commit would miss it (a 100 MiB file, seen in
    // e2e). sync(2) makes the sandbox settle its files first. Without a `sync` binary in the image, it goes on.
    if (op === "commit")
      await new Promise((resolve) => execFile("sync", { timeout: 10_000 }, () => resolve(undefined)));
    const socket = await this.socket!;
    const rid = this.rid++;
    const answer = new Promise<{ version: number }>((resolve, reject) => this.waiting.set(rid, { resolve, reject }));
    writeFrames(socket, [encodeMessage({ t: "volume", rid, op, name } satisfies RunnerMessage)]);
    return answer;
  }

  answer(done: Extract<WorkerToRunner, { t: "volume-done" }>): void {
    const waiting = this.waiting.get(done.rid);
    this.waiting.delete(done.rid);
    if (done.error !== undefined) {
      const error = new Error(done.error);
      error.name = "SkiffError";
      waiting?.reject(error);
    } else waiting?.resolve({ version: done.version ?? 0 });
  }
}

/**
 * Booted to be snapshotted: says `snapshot-ready` and closes the connection (an open one could not be saved),
 * then waits. The worker snapshots the container meanwhile; this returns in a container restored from the
 * snapshot, where the worker made RESTORED_MARK before the restore, with its connection to that container's
 * worker: its token, and its id for currentContainerId().
 */
async function snapshotAndRestore(path: string, socket: Socket, volumes: VolumeRequests): Promise<Connection> {
  // Connections to the worker's relay that the code's calls left open (the SDK's client, idle keep-alive
  // sockets) cannot be saved: closed now, opened again by the next call after the restore.
  const context = getContext();
  const client = context?.client;
  if (context) context.client = undefined;
  await client?.disconnect();
  httpAgent.destroy();
  await new Promise<void>((resolve) => {
    socket.once("close", () => resolve());
    writeFrames(socket, [encodeMessage({ t: "snapshot-ready" } satisfies RunnerMessage)]);
    socket.end();
  });
  const mark = join(dirname(path), RESTORED_MARK);
  while (!existsSync(mark)) await sleep(RESTORE_POLL_MS);
  const connection = open(path, (done) => volumes.answer(done));
  volumes.connected(connection.then(({ socket }) => socket));
  const restored = await connection;
  if (context) {
    context.token = restored.token;
    if (restored.containerId) context.containerId = restored.containerId;
  }
  if (restored.containerId) process.env.SKIFF_CONTAINER_ID = restored.containerId;
  return restored;
}

/** How often a runner waiting in a snapshot looks for RESTORED_MARK: the wait after a restore, at most. */
const RESTORE_POLL_MS = 2;

/**
 * Connects to the worker and waits for its hello, which carries the container's token. Answers to volume
 * requests go to `onVolumeDone` at once: the code may wait on one while it loads, before handlers are set.
 */
function open(
  path: string,
  onVolumeDone: (message: Extract<WorkerToRunner, { t: "volume-done" }>) => void,
): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const reader = new FrameReader();
    const early: WorkerToRunner[] = [];
    let handler: ((message: WorkerToRunner) => void) | undefined;
    let token: string | undefined;
    const setHandler = (next: (message: WorkerToRunner) => void) => {
      handler = next;
    };
    socket.on("data", (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        // The worker is trusted and validated its side; a shape check keeps zod out of every container.
        const message = decodeMessage(frame) as WorkerToRunner;
        if (!isWorkerMessage(message)) throw new Error("skiff runner: malformed message");
        if (token === undefined) {
          if (message.t !== "hello") throw new Error("skiff runner: the worker's first message was not its hello");
          token = message.token;
          resolve({ socket, token, containerId: message.containerId, early, setHandler });
        } else if (message.t === "volume-done") onVolumeDone(message);
        else if (handler) handler(message);
        else early.push(message);
      }
    });
    socket.once("error", reject);
    socket.once("close", () => reject(new Error("skiff runner: the worker closed the connection before its hello")));
  });
}

function isWorkerMessage(message: WorkerToRunner): boolean {
  switch (message.t) {
    case "hello":
      return typeof message.token === "string";
    case "inputs":
      return Array.isArray(message.inputs);
    case "shutdown":
      return true;
    case "credit":
      return typeof message.inputId === "string" && typeof message.consumed === "number";
    case "cancel":
      return typeof message.inputId === "string";
    case "volume-done":
      return typeof message.rid === "number";
    default:
      return false;
  }
}

/**
 * Exits once what the function wrote to stdout and stderr has left the process: `process.exit` drops writes
 * still queued, and a chatty function's last lines may be (its output need not be read as fast as written).
 * At most EXIT_FLUSH_MS: a reader that never reads does not keep the container up.
 */
function exitWhenFlushed(code: number): void {
  let waiting = 2;
  const flushed = () => {
    if (--waiting === 0) process.exit(code);
  };
  process.stdout.write("", flushed);
  process.stderr.write("", flushed);
  setTimeout(() => process.exit(code), EXIT_FLUSH_MS).unref();
}

/** How long an ending runner waits for its output to be taken. */
const EXIT_FLUSH_MS = 5_000;
