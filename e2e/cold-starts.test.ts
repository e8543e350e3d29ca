import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hasCommand, Stack } from "./stack.js";

const FIXTURE = "e2e/fixtures/snapshots.ts";

type Info = {
  container: string;
  loadedIn: string;
  connectedIn: string;
  snapRuns: number;
  otherRuns: number;
  sum: number;
  fromHook: number;
  fromMethod?: number;
};

/** The lines of a run's output that say a snapshot was taken, or that restoring one failed. */
const taken = (output: string) => output.split("\n").filter((line) => line.includes("memory snapshot taken")).length;

type Who = {
  container: string;
  envContainer: string;
  host: string;
  upBeforeCallMs: number;
  secret: string;
  secrets: string[];
};

/**
 * Cold starts through the real CLI, server and worker on gVisor. Memory snapshots: a class's snap hook runs
 * once, in the container that is snapshotted; every other container restores it and runs only the other hook.
 * Spare runners: a container booted ahead takes a new container's place, with that container's own id and
 * secrets only, and serves it alone.
 */
describe.skipIf(!hasCommand("runsc"))("cold starts on gvisor", () => {
  let stack: Stack;
  const step = async (name: string) => {
    const run = await stack.run(["run", FIXTURE, "--step", name], { timeoutMs: 300_000 });
    expect(run.code, `${name}\n${run.stdout}\n${run.stderr}`).toBe(0);
    return { result: run.results[0], output: `${run.stdout}\n${run.stderr}` };
  };

  beforeAll(async () => {
    stack = await Stack.start({ runtime: "gvisor" });
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("20 concurrent cold starts take one snapshot and restore it, with the snap hook's state", async () => {
    const { result, output } = await step("many");
    const infos = result as Info[];
    expect(infos).toHaveLength(20);
    const containers = new Set(infos.map((info) => info.container));
    expect(containers.size).toBeGreaterThan(1);
    // One snapshot: every container's snap-hook state came from the same container.
    expect(new Set(infos.map((info) => info.loadedIn)).size, output).toBe(1);
    expect(taken(output)).toBe(1);
    for (const info of infos) {
      expect(info.snapRuns).toBe(1);
      expect(info.otherRuns).toBe(1);
      expect(info.connectedIn).toBe(info.container);
      expect(info.sum).toBe(24_014);
    }
  }, 400_000);

  it("a corrupted snapshot falls back to a boot that takes it again, and the new one is restored", async () => {
    const { result, output } = await step("corrupt");
    const { first, corrupted, second, third } = result as { first: Info; corrupted: number; second: Info; third: Info };
    expect(corrupted).toBeGreaterThan(0);
    expect(output).toContain("restoring the memory snapshot failed");
    expect(taken(output)).toBe(2);
    // The second container took the new snapshot itself; the third restored it.
    expect(second.loadedIn).toBe(second.container);
    expect(second.loadedIn).not.toBe(first.loadedIn);
    expect(third.loadedIn).toBe(second.container);
    expect(third.connectedIn).toBe(third.container);
    expect(third.container).not.toBe(second.container);
    // The snap hook called a function; so does the restored container, with its own token.
    expect(third.fromHook).toBe(3);
    expect(third.fromMethod).toBe(5);
  }, 400_000);

  it("a cold start takes a spare runner booted ahead, with its own id and secrets, and never shares it", async () => {
    const who = async (secret: string) => {
      const run = await stack.run(["run", "e2e/fixtures/spares.ts"], {
        timeoutMs: 120_000,
        env: { E2E_SECRET: secret },
      });
      expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
      return run.results[0] as Who;
    };
    // The first run's start has the worker boot a spare for this image, cpu and memory.
    await who("e2e-secret-1");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const second = await who("e2e-secret-2");
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const third = await who("e2e-secret-3");
    for (const [info, secret] of [
      [second, "e2e-secret-2"],
      [third, "e2e-secret-3"],
    ] as const) {
      expect(info.host).toMatch(/^sp-/);
      // Its Node was up before the call: it was booted ahead.
      expect(info.upBeforeCallMs).toBeGreaterThan(0);
      expect(info.container).toMatch(/^ct-/);
      expect(info.envContainer).toBe(info.container);
      // Only this run's secret: a spare never carries another container's.
      expect(info.secrets).toEqual([secret]);
    }
    expect(third.host).not.toBe(second.host);
  }, 300_000);

  it("a snap hook that throws fails the call as an enter hook would, and no snapshot is kept", async () => {
    const { result, output } = await step("throws");
    const { error } = result as { error?: string };
    expect(error).toContain("the weights are missing");
    expect(taken(output)).toBe(0);
  }, 300_000);

  it("a function is snapshotted once its module has loaded", async () => {
    const { result, output } = await step("plain");
    const info = result as { container: string; loadedIn: string };
    expect(taken(output)).toBe(1);
    // The snapshot is restored into the same container that took it: its module loaded there, once.
    expect(info.loadedIn).toBe(info.container);
  }, 300_000);
});

describe.skipIf(!hasCommand("runc") || process.getuid?.() !== 0)("memory snapshots on runc", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start({ runtime: "runc" });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("boots every container, runs both hooks in each, and says why", async () => {
    const run = await stack.run(["run", FIXTURE, "--step", "corrupt"], { timeoutMs: 300_000 });
    const output = `${run.stdout}\n${run.stderr}`;
    expect(run.code, output).toBe(0);
    const { first, second } = run.results[0] as { first: Info; second: Info };
    for (const info of [first, second]) {
      expect(info.loadedIn).toBe(info.container);
      expect(info.snapRuns).toBe(1);
      expect(info.otherRuns).toBe(1);
    }
    expect(output).toContain("memory snapshots need the gvisor runtime, and this worker runs runc");
    expect(taken(output)).toBe(0);
  }, 300_000);
});
