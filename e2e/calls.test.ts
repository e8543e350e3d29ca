import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, ROOT, Stack } from "./stack.js";

const FILE = "e2e/fixtures/calls.ts";

/**
 * A tiny counter the functions call, to count attempts from outside. Containers have their own network, so it
 * listens on all addresses and the worker lets containers reach its port on the host (SKIFF_ALLOW_HOST_PORTS).
 */
function counterServer(): Promise<{ port: number; server: Server }> {
  const counts = new Map<string, number>();
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    const key = url.searchParams.get("key") ?? "";
    if (url.pathname === "/hit") counts.set(key, (counts.get(key) ?? 0) + 1);
    response.end(String(counts.get(key) ?? 0));
  });
  return new Promise((resolve) =>
    server.listen(0, "0.0.0.0", () => resolve({ port: (server.address() as { port: number }).port, server })),
  );
}

describe("calls through the real CLI, server, worker and containers", () => {
  let stack: Stack;
  let counter: { port: number; server: Server };
  let counterUrl: string;
  beforeAll(async () => {
    counter = await counterServer();
    stack = await Stack.start({ workerEnv: { SKIFF_ALLOW_HOST_PORTS: String(counter.port) } });
    // The host as containers see it: the bridge address, or loopback for the process runtime (host network).
    const host = stack.runtime === "process" ? "127.0.0.1" : "10.213.0.1";
    counterUrl = `http://${host}:${counter.port}`;
  });
  afterAll(async () => {
    await stack?.stop();
    counter?.server.close();
  });

  const run = async (entry: string, ...args: string[]) => {
    const result = await stack.run(["run", `${FILE}::${entry}`, ...args]);
    if (result.code !== 0) throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
    return result;
  };

  it("runs remote and local calls", async () => {
    const { results } = await run("remote");
    expect(results).toEqual([{ value: 49, local: 25 }]);
  });

  it("calls functions from inside a container with the container's own token", async () => {
    const { results } = await run("nested");
    expect(results[0]).toEqual({
      one: 16,
      sum: 14,
      spawned: 25,
      bigBack: true,
      byName: 9,
      listing: "FORBIDDEN",
      tokenInEnv: false,
      // The worker relays the API on a socket beside the runner's (a host path under the process runtime).
      serverUrl: expect.stringMatching(/^unix:.*\/api\.sock$/),
    });
  });

  it("round-trips Date, Map, Set, BigInt and typed arrays", async () => {
    const { results } = await run("types");
    expect(results[0]).toEqual({
      date: true,
      map: true,
      set: true,
      big: true,
      bytes: true,
      floats: true,
      nested: true,
    });
  });

  it("maps 1,000 inputs in order and unordered", async () => {
    const { results } = await run("mapMany", "--n", "1000");
    expect(results[0]).toMatchObject({ count: 1000, inOrder: true, pairs: [4, 9] });
    const r = results[0] as { unorderedSum: number; expectedSum: number };
    expect(r.unorderedSum).toBe(r.expectedSum);
  });

  it("spawns, gets by id, times out a get and cancels a running call", async () => {
    const { results } = await run("spawnGetCancel");
    expect(results[0]).toMatchObject({ value: 144, timedOut: "TimeoutError", cancelled: "CancelledError" });
    expect((results[0] as { cancelMs: number }).cancelMs).toBeLessThan(10_000);
  });

  it("rethrows remote exceptions with their class, message and a stack in the user's .ts", async () => {
    const { results } = await run("errors");
    const [thrown, mixed] = results as [{ name: string; message: string; stack: string }, { mixed: unknown[] }];
    expect(thrown).toMatchObject({ name: "ValidationError", message: "bad input 42" });
    const line =
      readFileSync(join(ROOT, FILE), "utf8")
        .split("\n")
        .findIndex((l) => l.includes("the stack must point at this line")) + 1;
    expect(thrown.stack).toMatch(new RegExp(`e2e/fixtures/calls\\.ts:${line}:\\d+`));
    expect(mixed.mixed).toEqual([0, "error:bad input 1", 0]);
  });

  it("retries user errors with backoff and never retries a NonRetriableError", async () => {
    const { results } = await run("retries", "--counter", counterUrl);
    expect(results[0]).toEqual({ attempts: 3, nonRetriable: "NonRetriableError: no point retrying", refusesHits: 1 });
  });

  it("kills an attempt past its timeout and keeps serving", async () => {
    const { results } = await run("timeouts");
    expect(results[0]).toMatchObject({ threw: true, name: "TimeoutError" });
    expect((results[0] as { ms: number }).ms).toBeLessThan(15_000);
    expect(results[1]).toEqual({ after: 0 });
  });

  it("moves 5 MiB arguments and results through the blob store", async () => {
    const { results } = await run("payload");
    expect(results[0]).toEqual({ sha: true, size: 5 * 1024 * 1024, inverted: true });
  });

  it("streams container logs in order, prefixed by function and container", async () => {
    const { stdout, stderr, results } = await run("logs", "--n", "200");
    expect(results[0]).toEqual({ returned: 200 });
    const lines = stdout.split("\n").filter((line) => /^\[chatty [0-9a-f]{6}\] line \d+$/.test(line));
    expect(lines.map((line) => Number(line.split(" ").pop()))).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(stderr).toMatch(/\[chatty [0-9a-f]{6}\] to stderr/);
  });

  it("loses no line of a container that writes 50,000 lines at once", async () => {
    const { stdout, results } = await run("logs", "--n", "50000");
    expect(results[0]).toEqual({ returned: 50_000 });
    const numbers = stdout.split("\n").flatMap((line) => /^\[chatty [0-9a-f]{6}\] line (\d+)$/.exec(line)?.[1] ?? []);
    expect(numbers.length).toBe(50_000);
    expect(numbers.map(Number)).toEqual(Array.from({ length: 50_000 }, (_, i) => i));
  });

  it("fails the call with the user's error when the module cannot load in the container", async () => {
    const result = await stack.run(["run", "e2e/fixtures/init-fail.ts"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.results[0]).toEqual({
      threw: true,
      name: "CallError",
      code: "INIT_FAILED",
      message: "the model file is missing in the container",
    });
  });

  it("reuses a container across inputs and stops it after the scaledown window", async () => {
    const result = await stack.run(["run", "e2e/fixtures/lifecycle.ts::reuse"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.results[0]).toMatchObject({ reused: true, replaced: true });
  });

  it("fails an input that exceeds the memory limit with a clear error, then keeps serving", async () => {
    const result = await stack.run(["run", "e2e/fixtures/lifecycle.ts::oom"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.results[0]).toEqual({
      failure: expect.stringMatching(
        /^OUT_OF_MEMORY: the container ran out of memory \(limit 128 MiB\) while running this input: raise `memory`/,
      ),
      small: 8,
    });
  });

  it("fails an input whose function calls process.exit, then replaces the container", async () => {
    const { results } = await run("crash");
    const r = results[0] as { failure: string; after: string };
    expect(r.failure).toMatch(/^CallError: the container exited \(code 1\) while running this input/);
    expect(r.after).toBe("alive");
  });

  it("round-trips a 150 MiB argument and result through a container, whole", async () => {
    const result = await stack.run(["run", "e2e/fixtures/payloads.ts::roundTrip", "--mib", "150"]);
    if (result.code !== 0) throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
    expect(result.results).toEqual([
      { argBytes: 150 * 1024 * 1024, argIntact: true, resultBytes: 150 * 1024 * 1024 + 3, resultIntact: true },
    ]);
  }, 600_000);

  it("leaves an app running with --detach, reachable by name from any Node program, until skiff app stop", async () => {
    const detached = await stack.run(["run", "e2e/fixtures/calls.ts::remote", "--detach"]);
    expect(detached.code, detached.stderr).toBe(0);
    const appId = /skiff app stop (ap-[0-9a-f-]+)/.exec(detached.stderr)?.[1];
    expect(appId).toBeDefined();

    const program = await bundleProgram("e2e/fixtures/client-program.ts", stack.home);
    const result = await stack.runProgram<{ values: number[]; missing: string }>(program);
    expect(result.values).toEqual([81, 1, 4, 9]);
    expect(result.missing).toMatch(
      /app "e2e-calls" in environment "main" has no function or class "nope"; it has: boom, chatty, .*square/,
    );

    const listed = await stack.run(["app", "list"]);
    expect(listed.stdout).toMatch(new RegExp(`${appId}\\te2e-calls\\tdetached\\trunning`));
    expect(listed.stdout).toMatch(/\n$/);
    expect((await stack.run(["app", "stop", appId!])).code).toBe(0);
    expect((await stack.run(["app", "list"])).stdout).toMatch(new RegExp(`${appId}\\te2e-calls\\tdetached\\tstopped`));
  });
});
