import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, Stack } from "./stack.js";

describe("an app left running with --detach", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("is reachable by name from any Node program, and stops with skiff app stop", async () => {
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
