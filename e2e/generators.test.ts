import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, NO_TYPECHECK, ROOT, Stack } from "./stack.js";
import { containersOf, urlsIn, waitUntil, webRuntimes } from "./web-helpers.js";

const FILE = "e2e/fixtures/generators.ts";
const WEB_FILE = "e2e/fixtures/generators-web.ts";

/** The chunks of a response body with when each came (ms from `since`), read as they arrive. */
async function chunksOf(response: Response, since: number): Promise<{ text: string; ms: number }[]> {
  const chunks: { text: string; ms: number }[] = [];
  const decoder = new TextDecoder();
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    chunks.push({ text: decoder.decode(chunk, { stream: true }), ms: Date.now() - since });
  }
  return chunks;
}

/** `skiff app logs APP`, running: what it printed so far, and how to stop it. */
async function followLogs(stack: Stack, app: string): Promise<{ printed: () => string; stop: () => void }> {
  const child = spawn(process.execPath, [CLI, "app", "logs", app], { cwd: ROOT, env: stack.env, stdio: "pipe" });
  let printed = "";
  const following = new Promise<void>((resolve) => {
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding("utf8").on("data", (chunk: string) => {
        printed += chunk;
        if (printed.includes("following the logs")) resolve();
      });
    }
    child.once("exit", () => resolve());
  });
  await following;
  await new Promise((resolve) => setTimeout(resolve, 1000)); // it asks for the stream just after saying so
  return { printed: () => printed, stop: () => child.kill("SIGKILL") };
}

/**
 * Generator functions (`async function*`) through the real CLI, server, worker and containers: `.remoteGen`
 * yields each value as the container yields it, a throw after two values comes after them, a `break`
 * stops the remote generator, a slow caller holds a fast generator back, and an endpoint streams a remote
 * generator's values to an HTTP client, cancelling it as soon as the client leaves.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`generators on ${runtime.name}`, () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await Stack.start({ runtime: runtime.name });
    }, 120_000);
    afterAll(async () => {
      await stack?.stop();
    });

    let deployedWeb: Promise<Record<string, string>> | undefined;
    /** The URLs of WEB_FILE's endpoints, deployed once for the tests that need them. */
    const webUrls = () => {
      deployedWeb ??= stack.run(["deploy", WEB_FILE, NO_TYPECHECK], { timeoutMs: 300_000 }).then((deployed) => {
        expect(deployed.code, deployed.stderr).toBe(0);
        return urlsIn(deployed.stderr);
      });
      return deployedWeb;
    };

    const run = async (entry: string) => {
      const result = await stack.run(["run", `${FILE}::${entry}`], { timeoutMs: 180_000 });
      if (result.code !== 0)
        throw new Error(`exit ${result.code}\n${result.stdout}\n${result.stderr}\n${stack.logs()}`);
      return result;
    };

    it("yields each value as the generator yields it, in order", async () => {
      const { results } = await run("inOrder");
      const { words, times, total } = results[0] as { words: string[]; times: number[]; total: number };
      expect(words).toEqual(["a", "b", "c", "d", "e"]);
      // 400 ms between values in the container: the first arrives well before the generator ends.
      expect(times[4]! - times[0]!).toBeGreaterThan(1200);
      expect(total - times[0]!).toBeGreaterThan(1200);
      for (let i = 1; i < 5; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThan(250);
    }, 240_000);

    it("rethrows a generator's error after the values it yielded, with its class and source line", async () => {
      const { results } = await run("failsAfterTwo");
      expect(results[0]).toEqual({
        got: ["one", "two"],
        name: "TokenError",
        message: "failed after two",
        pointsAtSource: true,
      });
    }, 240_000);

    it("stops the remote generator when the caller breaks out of its loop", async () => {
      const { results, stdout, stderr } = await run("breaks");
      expect(results[0]).toEqual({ got: [0, 1, 2] });
      const stopped = /endless stopped after (\d+)/.exec(stdout + stderr);
      expect(stopped, stdout + stderr).not.toBeNull();
      // It never ran more than its window (64) past what the caller took.
      expect(Number(stopped![1])).toBeLessThanOrEqual(3 + 64 + 1);
    }, 240_000);

    it("holds a fast generator back to what a slow caller takes (a bounded window of values)", async () => {
      const { results } = await run("slowCaller");
      const { made, taken } = results[0] as { made: number[]; taken: number[] };
      expect(made).toHaveLength(200);
      // Value i is made only once the caller took value i - 64 (its window): without backpressure all 200
      // would be made before the caller took the second. Clocks: the same host's (a few ms of slack).
      for (let i = 64; i < 200; i++) expect(made[i]!).toBeGreaterThanOrEqual(taken[i - 64]! - 5);
      expect(made[199]! - made[0]!).toBeGreaterThan(1000);
    }, 240_000);

    it("streams 5,000 values in order through many windows of credit", async () => {
      const { results } = await run("volume");
      const { count, inOrder, perSecond } = results[0] as { count: number; inOrder: boolean; perSecond: number };
      expect({ count, inOrder }).toEqual({ count: 5000, inOrder: true });
      console.log(`generators on ${runtime.name}: ${perSecond} values/s to one caller`);
    }, 240_000);

    it("refuses .remote on a generator and .remoteGen on a plain function, pointing at the other; .local iterates", async () => {
      const { results } = await run("misuse");
      const { remote, gen, local } = results[0] as { remote: string; gen: string; local: string[] };
      expect(remote).toMatch(/is an async generator function: iterate its values with `for await .*remoteGen/);
      expect(gen).toMatch(/is not an async generator function: call it with \.remote/);
      expect(local).toEqual(["x", "y"]);
    }, 240_000);

    it("sends values over 2 MiB through the blob store, and prints a generator's values from `skiff run FILE::fn`", async () => {
      const { results } = await run("bigValues");
      const MiB3 = 3 * 1024 * 1024;
      expect(results[0]).toEqual({
        got: [
          [MiB3, 1, 1],
          [MiB3, 2, 2],
          [MiB3, 3, 3],
        ],
      });
      const direct = await stack.run(["run", `${FILE}::words`, "--", "x y", "10"], { timeoutMs: 180_000 });
      expect(direct.code, direct.stderr).toBe(0);
      expect(direct.stdout).toMatch(/^x\ny\n/m);
    }, 240_000);

    it("streams a class's async generator method, in the pool of its parameters", async () => {
      const { results } = await run("classMethod");
      const { shouted, refused, plain } = results[0] as { shouted: string[]; refused: string; plain: string };
      expect(shouted).toEqual(["A?", "B?"]);
      expect(refused).toMatch(/is an async generator function: iterate its values/);
      expect(plain).toBe("plain");
    }, 240_000);

    it("streams a remote generator's values from an endpoint to an HTTP client as they come (SSE, NDJSON); a client that leaves stops it", async () => {
      const urls = await webUrls();
      const url = urls.stream!;
      expect(url).toBeDefined();

      const since = Date.now();
      const response = await fetch(`${url}?prompt=${encodeURIComponent("a b c d")}&delay=400`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const chunks = await chunksOf(response, since);
      const body = chunks.map((c) => c.text).join("");
      expect(body).toBe(["a", "b", "c", "d"].map((token) => `data: ${JSON.stringify({ token })}\n\n`).join(""));
      // Each event reached the client as the container yielded it, not all at the end.
      const firstAt = chunks.find((c) => c.text.includes('"a"'))!.ms;
      const lastAt = chunks.find((c) => c.text.includes('"d"'))!.ms;
      expect(lastAt - firstAt).toBeGreaterThan(900);

      const ndjson = await fetch(`${url}?prompt=x%20y&delay=10`, { headers: { accept: "application/x-ndjson" } });
      expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
      expect(await ndjson.text()).toBe('{"token":"x"}\n{"token":"y"}\n');

      // A client that goes away stops the remote generator (its `finally` runs in its container).
      const logs = await followLogs(stack, "e2e-gen-web");
      try {
        const aborted = new AbortController();
        const endless = await fetch(urls.endless!, { signal: aborted.signal });
        const reader = endless.body!.getReader();
        expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^data: \{"token":\d+\}/);
        aborted.abort();
        const deadline = Date.now() + 20_000;
        while (!/forever stopped after \d+/.test(logs.printed()) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        expect(logs.printed()).toMatch(/forever stopped after \d+/);
      } finally {
        logs.stop();
      }
    }, 400_000);

    it("cancels a remote generator at once when the endpoint's client leaves while it sleeps between values", async () => {
      const urls = await webUrls();
      const aborted = new AbortController();
      const response = await fetch(urls.doze!, { signal: aborted.signal });
      const reader = response.body!.getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe('data: {"token":"first"}\n\n');
      expect(await containersOf(stack, "dozing")).toHaveLength(1);
      const left = Date.now();
      aborted.abort();
      // The call is cancelled as the client leaves; a generator that sleeps through its container's request to
      // stop goes with its container 5 s later. Were the cancel held until the next value, it would come at 30 s.
      await waitUntil(
        stack,
        "the sleeping generator's container is stopped",
        async () => (await containersOf(stack, "dozing")).length === 0,
        20_000,
      );
      expect(Date.now() - left).toBeLessThan(15_000);
    }, 400_000);
  });
}
