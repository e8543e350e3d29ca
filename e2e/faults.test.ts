import type { ChildProcess } from "node:child_process";
import { LEASE_MS } from "@skiff/protocol";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
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
  // One stack for every case: each strikes it and brings it back.
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterEach(async () => {
    // A case that failed halfway may have left a process down: the next case gets the stack whole.
    const down = (child: ChildProcess | undefined) => !child || child.exitCode !== null || child.signalCode !== null;
    if (down(stack?.server)) await stack.startServer();
    if (down(stack?.worker)) await stack.startWorker();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** SIGKILLs `which` in the middle of a map, starts it again, and expects every input to finish. */
  async function survives(which: "worker" | "server") {
    const result = await mapThrough(stack, async () => {
      await stack.kill(which, "SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
      await (which === "worker" ? stack.startWorker() : stack.startServer());
    });
    expect(result.code, `${result.stdout}\n${result.stderr}\n${stack.logs()}`).toBe(0);
    expect(result.results, `${result.stdout}\n${result.stderr}`).toEqual([{ done: 200, ok: true }]);
  }

  it("finishes every input after the worker is SIGKILLed and comes back", () => survives("worker"));

  it("finishes the map after the server is restarted", () => survives("server"));

  it("runs the inputs of a worker that died after a server restart again as soon as the worker is back", async () => {
    const holding = new Set<string>();
    let killedAt = 0;
    let struck: Promise<void> | undefined;
    const result = await stack.run(["run", "e2e/fixtures/faults.ts::heldMap", "--ms", "12000"], {
      timeoutMs: 180_000,
      onLine: (line) => {
        const match = /HOLDING (\d+)$/.exec(line);
        if (match && Number(match[1]) < 4) holding.add(match[1]!);
        if (holding.size < 4 || struck) return;
        struck = (async () => {
          await stack.kill("server", "SIGKILL");
          await stack.startServer();
          await stack.waitForWorkers(1);
          killedAt = Date.now();
          await stack.kill("worker", "SIGKILL");
          await stack.startWorker();
        })();
      },
    });
    await struck;
    expect(result.code, `${result.stdout}\n${result.stderr}\n${stack.logs()}`).toBe(0);
    const runs = result.results[0] as { i: number; startedAt: number }[];
    expect(runs.map((run) => run.i)).toEqual([0, 1, 2, 3]);
    // Every input was in flight when the worker died, so each result is from an attempt after it.
    for (const run of runs) expect(run.startedAt).toBeGreaterThan(killedAt);
    // Not after a lease period: the worker said hello without them, so they were lost at once.
    const delay = Math.max(...runs.map((run) => run.startedAt)) - killedAt;
    expect(delay, stack.logs()).toBeLessThan(LEASE_MS);
  }, 180_000);

  it("delivers every container log line exactly once across a server restart", async () => {
    const [inputs, lines] = [20, 500];
    let struck: Promise<void> | undefined;
    const result = await stack.run(
      ["run", "e2e/fixtures/faults.ts::chattyMap", "--n", `${inputs}`, "--lines", `${lines}`],
      {
        timeoutMs: 180_000,
        onLine: (line) => {
          const match = /^PROGRESS (\d+)$/.exec(line);
          if (!match || Number(match[1]) < 4 || struck) return;
          struck = (async () => {
            await stack.kill("server", "SIGKILL");
            await stack.startServer();
          })();
        },
      },
    );
    await struck;
    expect(result.code, `${result.stderr}\n${stack.logs()}`).toBe(0);
    expect(result.results).toEqual([{ done: inputs }]);
    const counts = new Map<string, number>();
    for (const [, id] of result.stdout.matchAll(/ LINE (\d+-\d+)$/gm)) counts.set(id!, (counts.get(id!) ?? 0) + 1);
    const missing: string[] = [];
    const repeated: string[] = [];
    for (let i = 0; i < inputs; i++) {
      for (let k = 0; k < lines; k++) {
        const count = counts.get(`${i}-${k}`) ?? 0;
        if (count === 0) missing.push(`${i}-${k}`);
        if (count > 1) repeated.push(`${i}-${k}`);
      }
    }
    expect({ missing, repeated }).toEqual({ missing: [], repeated: [] });
  }, 180_000);
});
