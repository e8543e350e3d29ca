import { afterEach, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";

const FILE = "e2e/fixtures/faults.ts::longMap";

/** Runs the long map and strikes once it has made some progress; the map must still complete. */
async function mapThrough(stack: Stack, strike: () => Promise<void>) {
  let struck: Promise<void> | undefined;
  const result = await stack.run(["run", FILE, "--n", "200"], {
    timeoutMs: 180_000,
    onLine: (line) => {
      const match = /^PROGRESS (\d+)$/.exec(line);
      if (match && Number(match[1]) >= 40 && !struck) struck = strike();
    },
  });
  await struck;
  return result;
}

describe("faults in the middle of a map", () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.stop();
    stack = undefined;
  });

  it("finishes every input after the worker is SIGKILLed and comes back", async () => {
    stack = await Stack.start();
    const s = stack;
    const result = await mapThrough(s, async () => {
      await s.kill("worker", "SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      await s.startWorker();
    });
    expect(result.code, `${result.stdout}\n${result.stderr}\n${s.logs()}`).toBe(0);
    expect(result.results, `${result.stdout}\n${result.stderr}`).toEqual([{ done: 200, ok: true }]);
  });

  it("finishes the map after the server is restarted", async () => {
    stack = await Stack.start();
    const s = stack;
    const result = await mapThrough(s, async () => {
      await s.kill("server", "SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      await s.startServer();
    });
    expect(result.code, `${result.stdout}\n${result.stderr}\n${s.logs()}`).toBe(0);
    expect(result.results, `${result.stdout}\n${result.stderr}`).toEqual([{ done: 200, ok: true }]);
  });
});
