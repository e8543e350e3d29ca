import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, fixtureVariant, NO_TYPECHECK, ROOT, Stack } from "./stack.js";

interface Container {
  id: string;
  function: string;
  version: number;
  state: string;
  start?: { kind: string; phases: Record<string, number> };
}

/**
 * Deployed apps through the real CLI, server, worker and containers: versions and rollback, a failed
 * deploy, classes with parameters and hooks, batching, warm pools, a burst that scales up and back down.
 */
describe("a deployed app", () => {
  let stack: Stack;
  let client: string;
  /** Writes a variant of the fixture app and deploys it. */
  const deploy = (name: string, edit: (code: string) => string = (code) => code) =>
    stack.run(["deploy", fixtureVariant("e2e/fixtures/deployed-app.ts", name, edit), NO_TYPECHECK], {
      timeoutMs: 300_000,
    });

  /** Runs a scenario of the client program against the deployed app. */
  const call = <T>(scenario: string): Promise<T> => stack.runProgram<T>(client, [scenario]);

  const containers = async (fn?: string): Promise<Container[]> => {
    const { containers } = await stack.api<{ containers: Container[] }>("/v1/containers");
    return fn ? containers.filter((c) => c.function === fn) : containers;
  };

  const waitFor = async (what: string, check: () => Promise<boolean>, ms = 60_000) => {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}:\n${stack.logs().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };

  beforeAll(async () => {
    stack = await Stack.start();
    client = await bundleProgram("e2e/fixtures/deployed-client.ts", stack.home);
    const first = await deploy("deploy-v1");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/deployed e2e-deploy version 1 to "main"/);
    expect(first.stderr).toMatch(
      /call them with Function\.fromName\("e2e-deploy", "\w+"\) or Cls\.fromName\("e2e-deploy", "\w+"\)/,
    );
  }, 360_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it("keeps minContainers warm with no traffic, until updateAutoscaler lowers it", async () => {
    await waitFor("the warm pool has its container", async () => (await containers("warm")).length === 1);
    const [first] = await containers("warm");
    // Well past its 2 s scaledown window, the same container is still there.
    await new Promise((r) => setTimeout(r, 5000));
    await waitFor("the warm container runs", async () => (await containers("warm"))[0]?.state === "running");
    const [warm] = await containers("warm");
    expect(warm?.id).toBe(first!.id);
    const listed = await stack.run(["container", "list", "--phases"]);
    expect(listed.stdout).toContain(`${first!.id}\t`);
    // How it started, phase by phase: a real boot takes time, and the runner loaded the bundle.
    expect(warm!.start?.kind).toBe("booted");
    expect(warm!.start?.phases.boot).toBeGreaterThan(0);
    expect(Object.keys(warm!.start?.phases ?? {})).toEqual(expect.arrayContaining(["placement", "prepare", "load"]));
    expect(listed.stdout).toMatch(new RegExp(`${first!.id}\\t.*\\tbooted \\d+ ms\\n  placement \\d+ ms · prepare`));
    expect(listed.stdout).toMatch(/ · boot [1-9]\d* ms · load \d+ ms/);

    expect(await call("unwarm")).toBe("ok");
    await waitFor("the warm container scales down", async () => (await containers("warm")).length === 0, 30_000);
  }, 120_000);

  it("runs class methods in pools per parameter set, enter once per container, and fails inputs when enter throws or outlasts startupTimeout", async () => {
    const result = await call<{
      small: { y: number; loads: number; size: string };
      again: { y: number; loads: number };
      large: { y: number; size: string };
      described: string;
      badParam: string;
      broken: { message: string; stack: string };
      slow: string;
    }>("model");
    expect(result.small).toEqual({ y: 6, loads: 1, size: "small" });
    expect(result.again).toEqual({ y: 8, loads: 1, size: "small" });
    expect(result.large).toEqual({ y: 900, loads: 1, size: "large" });
    expect(result.described).toBe("small/5");
    expect(result.badParam).toMatch(/Model has no parameter "colour" \(its parameters: size, factor\)/);
    expect(result.broken.message).toMatch(/the weights are missing/);
    expect(result.broken.stack).toMatch(/deploy-v1\.ts:\d+/);
    expect(result.slow).toMatch(/did not become ready within its startupTimeout \(2000 ms\)/);
    // Three parameter sets, three pools.
    expect((await containers("Model")).length).toBe(3);
  }, 240_000);

  it("gathers 100 single calls to a batched function into at most 4 batches", async () => {
    const result = await call<{ lengthsMatch: boolean; batches: number; largest: number }>("batch");
    expect(result.lengthsMatch).toBe(true);
    expect(result.batches).toBeLessThanOrEqual(4);
    expect(result.largest).toBeLessThanOrEqual(32);
  }, 240_000);

  it("scales a burst of 200 calls from zero up to maxContainers and back to zero", async () => {
    let most = 0;
    const watching = setInterval(async () => {
      most = Math.max(most, (await containers("burst").catch(() => [])).length);
    }, 200);
    const result = await call<{ calls: number; containers: number }>("burst");
    clearInterval(watching);
    expect(result.calls).toBe(200);
    expect(result.containers).toBe(3);
    expect(most).toBe(3);
    await waitFor("the burst's containers stop", async () => (await containers("burst")).length === 0, 30_000);
  }, 240_000);

  it("runs schedules of the deployed app: a period without pile-up, a cron in its timezone", async () => {
    interface View {
      functionName: string;
      lastRunMs?: number;
      lastOutcome?: string;
      skippedTicks: number;
    }
    const ticker = async () => {
      const { schedules } = await stack.api<{ schedules: View[] }>("/v1/apps/e2e-deploy/schedules");
      return schedules.find((s) => s.functionName === "ticker");
    };
    await waitFor("the ticker ran and skipped a tick", async () => {
      const view = await ticker();
      return view?.lastRunMs !== undefined && view.skippedTicks > 0;
    });
    const history = await stack.run(["app", "history", "e2e-deploy"]);
    // 03:00 in Paris is 02:00 UTC in winter, 01:00 in summer.
    expect(history.stderr).toMatch(
      /nightly: cron "0 3 \* \* \*" \(Europe\/Paris\), next \d{4}-\d\d-\d\dT0[12]:00:00\.000Z, last never/,
    );
    expect(history.stderr).toMatch(/ticker: every 1s, next .*, last \d{4}-.*skipped: the previous run was still going/);
  }, 120_000);

  it("deploys new versions that callers reach by name, keeps the running one when a deploy fails, and rolls back", async () => {
    const logs = followLogs(stack);
    expect(await call("whoami")).toBe("v1");
    const second = await deploy("deploy-v2", (code) => code.replace('const VERSION = "v1"', 'const VERSION = "v2"'));
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toMatch(/deployed e2e-deploy version 2/);
    expect(await call("whoami")).toBe("v2");
    // A name the deployed app lacks is answered with the names it has.
    await expect(stack.api("/v1/functions/lookup?app=e2e-deploy&name=whoamii")).rejects.toThrow(
      /404 .*has no function or class \\?"whoamii\\?"; it has: .*whoami/,
    );
    // Version 1's Model containers drain; their exit hooks run.
    await waitFor("the old Model containers stop", async () =>
      (await containers("Model")).every((c) => c.version === 2),
    );
    await waitFor("the exit hook's log arrives", async () => logs.output().includes("closing small"), 30_000);
    logs.stop();

    const failed = await deploy("deploy-bad", (code) =>
      code
        .replace('const VERSION = "v1"', 'const VERSION = "v3"')
        .replace(
          "const image = Image.debianSlim();",
          'const image = Image.debianSlim().runCommands("echo broken step; exit 3");',
        ),
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/exit(ed with)? (code )?3/);
    expect(failed.stderr).toMatch(/not deployed: e2e-deploy in "main" keeps running the version it ran/);
    expect(await call("whoami")).toBe("v2");

    const history = await stack.run(["app", "history", "e2e-deploy"]);
    expect(history.stdout).toMatch(/^v2\t.*\trunning$/m);
    expect(history.stdout).toMatch(/^v1\t/m);
    expect(history.stdout).not.toMatch(/^v3\t/m);

    const rollback = await stack.run(["app", "rollback", "e2e-deploy", "1"]);
    expect(rollback.code, rollback.stderr).toBe(0);
    expect(await call("whoami")).toBe("v1");
    const after = await stack.run(["app", "history", "e2e-deploy"]);
    expect(after.stdout).toMatch(/^v3\t.*\trollback to v1\t.*running$/m);
    expect((await stack.run(["app", "list"])).stdout).toMatch(/\te2e-deploy\tdeployed\trunning\tv3\t/);
  }, 600_000);
});

/** `skiff app logs` in the background, collecting what it prints. */
function followLogs(stack: Stack): { output(): string; stop(): void } {
  let output = "";
  const child: ChildProcess = spawn(process.execPath, [join(ROOT, "dist/cli.mjs"), "app", "logs", "e2e-deploy"], {
    env: stack.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return { output: () => output, stop: () => child.kill("SIGKILL") };
}
