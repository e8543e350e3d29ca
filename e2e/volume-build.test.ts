import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuseUnavailable } from "../apps/worker/src/volumes/volume-test-kit.js";
import { e2eRuntime, Stack } from "./stack.js";

const FILE = "e2e/fixtures/volume-build.ts";
const BAD = "e2e/fixtures/volume-build-bad.ts";
const unavailable = await fuseUnavailable();

/**
 * A volume mounted into an image build step (runCommands' `volumes`), through the real CLI, server, worker,
 * rclone and runtime: committed when the step succeeds, not when it fails, never part of the layer, and a
 * cached layer does not run the step again.
 */
describe.skipIf(unavailable || e2eRuntime() === "process")("volumes in image builds", () => {
  let stack: Stack;
  const nonce = randomUUID();
  const env = { SKIFF_TEST_NONCE: nonce };
  const build = (entry: string, file = FILE) =>
    stack.run(["image", "build", `${file}::${entry}`], { env, timeoutMs: 300_000 });
  const get = (path: string) => stack.run(["volume", "get", "e2e-build-cache", path, "-"]);

  beforeAll(async () => {
    stack = await Stack.start();
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it("commits what a step wrote to its volume, and a cached layer does not run it again", async () => {
    const first = await build("probe");
    expect(first.code, `${first.stdout}\n${first.stderr}`).toBe(0);
    expect(first.stdout).toContain("image step 1/1 runCommands");
    expect(first.stdout).toMatch(/1\/1 .*: building/);
    expect((await get(`built-${nonce}.txt`)).stdout).toBe(`built-${nonce}\n`);

    const again = await build("probe");
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/1\/1 .*: cached/);
    const runs = (await get("runs.txt")).stdout.split("\n").filter((line) => line === nonce);
    expect(runs).toHaveLength(1);

    // The function's container has the layer's own files, not the volume's: it was a mount.
    const run = await stack.run(["run", `${FILE}::probe`], { env, timeoutMs: 300_000 });
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    expect(run.stdout).toContain(`"inLayer": "${nonce}"`);
    expect(run.stdout).toMatch(/"cache": (null|\[\])/);
  }, 600_000);

  it("drops what a failed step wrote, and refuses a volume that is not there", async () => {
    const broken = await build("broken", BAD);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain("exit code 3");
    const lost = await get(`failed-${nonce}.txt`);
    expect(lost.code).not.toBe(0);
    expect(lost.stderr).toContain(`failed-${nonce}.txt`);

    const absent = await build("absent", BAD);
    expect(absent.code).toBe(1);
    expect(absent.stderr).toContain(
      'an image step mounts the volume "e2e-build-absent", which is not in environment "main": create it with `skiff volume create e2e-build-absent --env main`',
    );
  }, 300_000);
});
