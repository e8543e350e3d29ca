// Helpers the web e2e suites share: which runtimes they run on, the URLs the CLI prints, curl, and waits.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { hasCommand, type Stack } from "./stack.js";

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

/** A URL line as `skiff deploy` and `skiff serve` print it: `skiff   LABEL  URL` (a `/w/...` path or a host name). */
const URL_LINE = /^skiff\s+([a-z0-9-]+)\s+(https?:\/\/(?:\S+\/w\/\S+|[a-z0-9-]+\.\S+))$/;

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

/** A container as `GET /v1/containers` lists it. */
export interface ListedContainer {
  id: string;
  function: string;
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
