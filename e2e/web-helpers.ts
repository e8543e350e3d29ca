// Helpers the web e2e suites share: which runtimes they run on, the URLs the CLI prints, curl, waits and
// WebSocket clients.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { expect } from "vitest";
import WebSocket from "ws";
import { CLI, hasCommand, NO_TYPECHECK, ROOT, Stack } from "./stack.js";

const MiB = 1024 * 1024;
const root = process.getuid?.() === 0;
const containerRuntimes = [
  { name: "gvisor", available: root && hasCommand("runsc") },
  { name: "runc", available: root && hasCommand("runc") },
];

/** The runtimes a web suite runs on: gVisor and runc where they exist, else plain processes, once. */
export const webRuntimes = containerRuntimes.some((r) => r.available)
  ? containerRuntimes
  : [{ name: "process", available: true }];

/** Whether curl is installed, for the checks that use it. */
export const curlAvailable = hasCommand("curl");

/**
 * A URL line as `skiff deploy` and `skiff serve` print it (`skiff   LABEL  URL`), or `skiff app list` and
 * `app history` (`  LABEL  URL`): a `/w/...` path or a host name.
 */
const URL_LINE = /^(?:skiff\s+)?([a-z0-9-]+)\s+(https?:\/\/(?:\S+\/w\/\S+|[a-z0-9-]+\.\S+))$/;

/** The URL of each label that a command printed. */
export function urlsIn(output: string): Record<string, string> {
  const urls: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const match = URL_LINE.exec(line.trim());
    if (match) urls[match[1]!] = match[2]!;
  }
  return urls;
}

/** `curl -sS ARGS`, with the status code it got: the last line of what `-w` adds. */
export async function curl(args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await promisify(execFile)("curl", ["-sS", "-w", "\n%{http_code}", ...args], {
    maxBuffer: 16 * MiB,
  });
  const at = stdout.lastIndexOf("\n");
  return { status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) };
}

/** Chunk `i` of a generated upload: 1 MiB of one byte value, different from its neighbours'. */
export const uploadChunk = (i: number) => Buffer.alloc(MiB, i % 251);

/** A body of `chunks` MiB made as it is read, never held whole. */
export function generatedBody(chunks: number): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i === chunks) controller.close();
      else controller.enqueue(uploadChunk(i++));
    },
  });
}

/** The arrival time of each SSE event (`event:` line) in a stream of text chunks. */
export async function eventTimes(chunks: AsyncIterable<string>): Promise<number[]> {
  const times: number[] = [];
  let pending = "";
  for await (const chunk of chunks) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) if (line.startsWith("event: tick")) times.push(Date.now());
  }
  return times;
}

/** A container as `GET /v1/containers` lists it. */
export interface ListedContainer {
  id: string;
  function: string;
  /** The app version it runs. */
  version: number;
}

/** The containers of function `fn` that the stack's workers run now. */
export async function containersOf(stack: Stack, fn: string): Promise<ListedContainer[]> {
  const { containers } = await stack.api<{ containers: ListedContainer[] }>("/v1/containers");
  return containers.filter((c) => c.function === fn);
}

/** Whether `skiff container list` lists a container of function `fn`. */
export async function cliListsContainerOf(stack: Stack, fn: string): Promise<boolean> {
  const listed = await stack.run(["container", "list"]);
  return listed.stdout.split("\n").some((line) => line.split("\t")[2] === fn);
}

/** Polls `check` every 250 ms until it holds; fails after `ms` with the stack's last logs. */
export async function waitUntil(stack: Stack, what: string, check: () => Promise<boolean>, ms = 90_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}:\n${stack.logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The text chunks of a response body as they arrive. */
export async function* textOf(body: ReadableStream<Uint8Array>): AsyncIterable<string> {
  const decoder = new TextDecoder();
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield decoder.decode(value, { stream: true });
  }
}

/** One request of a load loop: what it asked, what it got, and how long it took. */
export interface LoadSample {
  path: string;
  status: number;
  body: string;
  ms: number;
  /** When it was sent and when it ended (ms since the epoch). */
  sentAt: number;
  at: number;
}

/** A running load loop: `clients` concurrent clients, each sending its next request when the last is answered. */
export interface LoadLoop {
  samples: LoadSample[];
  /** Whether some answer so far starts with `text`. */
  seen(text: string): boolean;
  /** Stops sending and resolves once every request in flight has ended. */
  stop(): Promise<LoadSample[]>;
}

/** Keeps `clients` clients requesting `url + path` (a path picked at random each time) until stopped; failures are samples too. */
export function loadLoop(url: string, options: { clients: number; paths: string[] }): LoadLoop {
  const samples: LoadSample[] = [];
  let running = true;
  const client = async () => {
    while (running) {
      // Paths picked at random: clients taken in turn would fall into step, all slow or all quick at once.
      const path = options.paths[Math.floor(Math.random() * options.paths.length)]!;
      const sentAt = Date.now();
      const started = performance.now();
      const sample = await fetch(`${url}${path}`).then(
        async (response) => ({ status: response.status, body: await response.text() }),
        (error: Error) => ({ status: 0, body: String(error.cause ?? error) }),
      );
      samples.push({ path, ...sample, ms: performance.now() - started, sentAt, at: Date.now() });
    }
  };
  const clients = Array.from({ length: options.clients }, () => client());
  return {
    samples,
    seen: (text) => samples.some((s) => s.status === 200 && s.body.startsWith(text)),
    stop: async () => {
      running = false;
      await Promise.all(clients);
      return samples;
    },
  };
}

/** The p-th percentile (0-100) of some durations, in whole ms. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
}

/** A WebSocket opened through the gateway, or the HTTP answer its handshake got instead. */
export type Dialed =
  | { ws: WebSocket; headers: Record<string, string | string[] | undefined> }
  | { status: number; body: string };

/** Opens a WebSocket to an `http(s)://` web URL with the `ws` package as the client. */
export function dialWebSocket(url: string, headers: Record<string, string> = {}): Promise<Dialed> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), { headers, maxPayload: 64 * MiB });
    ws.once("upgrade", (res) => ws.once("open", () => resolve({ ws, headers: res.headers })));
    ws.once("unexpected-response", async (_req, res) => {
      let body = "";
      for await (const chunk of res) body += chunk;
      resolve({ status: res.statusCode ?? 0, body });
    });
    ws.once("error", reject);
  });
}

/** A WebSocket that must open: fails with the answer its handshake got otherwise. */
export async function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const dialed = await dialWebSocket(url, headers);
  if (!("ws" in dialed)) throw new Error(`the WebSocket was refused: ${dialed.status} ${dialed.body}`);
  return dialed.ws;
}

/** The next message a WebSocket gets. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) => ws.once("message", (data, isBinary) => resolve({ data: data as Buffer, isBinary })));
}

/** The code and reason a WebSocket closes with. */
export function closeOf(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })));
}

/**
 * An echo server's round trip of text, binary and a 1 MiB binary message, then its close codes: it closes
 * with the code a `close CODE REASON` message names, and answers a client's close with the client's code.
 */
export async function exerciseEcho(url: string): Promise<void> {
  const ws = await openWebSocket(url);
  ws.send("hello through skiff");
  expect(await nextMessage(ws)).toEqual({ data: Buffer.from("hello through skiff"), isBinary: false });
  ws.send(Buffer.from([0, 1, 2, 255]));
  expect(await nextMessage(ws)).toEqual({ data: Buffer.from([0, 1, 2, 255]), isBinary: true });
  const big = randomBytes(MiB);
  ws.send(big);
  const back = await nextMessage(ws);
  expect(back.isBinary).toBe(true);
  expect(createHash("sha256").update(back.data).digest("hex")).toBe(createHash("sha256").update(big).digest("hex"));
  ws.send("close 4002 server says bye");
  expect(await closeOf(ws)).toEqual({ code: 4002, reason: "server says bye" });

  const second = await openWebSocket(url);
  second.close(4001, "client says bye");
  // The server's end answers a close frame with the client's code: it reached the container and came back.
  expect(await closeOf(second)).toEqual({ code: 4001, reason: "client says bye" });
}

/** Round trips of a small text message on an open echo socket, one at a time: their p50 and p99 in ms. */
export async function echoLatency(ws: WebSocket, count: number): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    ws.send(`ping ${i}`);
    await nextMessage(ws);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => Math.round(times[Math.min(times.length - 1, Math.floor(q * times.length))]! * 100) / 100;
  return { p50: at(0.5), p99: at(0.99) };
}

/** A process's resident memory in MiB (Linux). */
function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) / 1024 : 0;
}

/**
 * Runs `work` while sampling the stack's server and worker RSS every 100 ms; resolves with how much each grew
 * at most (MiB) over its size before, to show that a large body never sat whole in either.
 */
export async function rssGrowthDuring(
  stack: Stack,
  work: () => Promise<void>,
): Promise<{ server: number; worker: number }> {
  const pids = { server: stack.server!.pid!, worker: stack.worker!.pid! };
  const before = { server: rssMiB(pids.server), worker: rssMiB(pids.worker) };
  const most = { ...before };
  const sampling = setInterval(() => {
    most.server = Math.max(most.server, rssMiB(pids.server));
    most.worker = Math.max(most.worker, rssMiB(pids.worker));
  }, 100);
  try {
    await work();
  } finally {
    clearInterval(sampling);
  }
  return { server: most.server - before.server, worker: most.worker - before.worker };
}

/**
 * A stack on `runtime` with `fixture` deployed, and the URLs the deploy printed. `up`: server and worker in
 * one `skiff up` process (`serverEnv` is then its environment).
 */
export async function deployedStack(
  runtime: string,
  fixture: string,
  options: { serverEnv?: Record<string, string>; up?: boolean } = {},
): Promise<{ stack: Stack; urls: Record<string, string> }> {
  const stack = options.up
    ? await Stack.up({ runtime, env: options.serverEnv ?? {} })
    : await Stack.start({ runtime, serverEnv: options.serverEnv ?? {} });
  const deployed = await stack.run(["deploy", fixture, NO_TYPECHECK], { timeoutMs: 300_000 });
  if (deployed.code !== 0) {
    await stack.stop();
    throw new Error(`skiff deploy ${fixture} failed:\n${deployed.stderr}`);
  }
  return { stack, urls: urlsIn(deployed.stderr) };
}

/** A `skiff serve` running against a stack (see `startServe`). */
export interface Served {
  child: ChildProcess;
  /** Everything it printed so far, stderr and stdout together. */
  readonly text: string;
  /** Its exit code once it ends. */
  exited: Promise<number | null>;
  /** Waits until what it printed matches `pattern`; fails with what it printed if it exits first. */
  printed(what: string, pattern: RegExp, ms?: number): Promise<void>;
  /** Waits until it printed the URL of `label`, and returns it. */
  url(label: string, ms?: number): Promise<string>;
}

/** Starts `skiff serve FILE ARGS` against `stack`; the caller ends it (SIGINT, as Ctrl-C does). */
export function startServe(stack: Stack, file: string, args: string[] = []): Served {
  const child = spawn(process.execPath, [CLI, "serve", file, ...args], {
    cwd: ROOT,
    env: stack.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  /** Waits until what it printed passes `check`; fails with what it printed if it exits first. */
  const until = (what: string, check: (text: string) => boolean, ms = 300_000) =>
    waitUntil(
      stack,
      what,
      async () => {
        if (check(text)) return true;
        if (child.exitCode !== null) throw new Error(`skiff serve exited (${child.exitCode}):\n${text}`);
        return false;
      },
      ms,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\nskiff serve printed:\n${text}`);
    });
  return {
    child,
    get text() {
      return text;
    },
    exited,
    printed: (what, pattern, ms) => until(what, (printed) => pattern.test(printed), ms),
    url: async (label, ms) => {
      await until(`skiff serve prints the URL of ${label}`, (printed) => urlsIn(printed)[label] !== undefined, ms);
      return urlsIn(text)[label]!;
    },
  };
}
