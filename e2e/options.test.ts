import { credentialOf, readProfiles, resolveProfile } from "skiff/profiles";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleProgram, fixtureVariant, Stack } from "./stack.js";

const FIXTURE = "e2e/fixtures/options.ts";

/** Options: refused by name before anything runs, sized against the workers, and varied per call. */
describe("function options", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const apps = async () => (await stack.api<{ apps: { name: string }[] }>("/v1/apps")).apps.map((a) => a.name);

  const post = async (path: string, body: unknown) => {
    const profile = resolveProfile(await readProfiles(stack.home), {});
    const response = await fetch(`${stack.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${credentialOf(profile)}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as { error?: { message: string } } };
  };

  /** `skiff run` of the fixture with one edit; it must fail before any app is made. */
  const refused = async (name: string, edit: (code: string) => string) => {
    const file = fixtureVariant(FIXTURE, name, edit);
    const result = await stack.run(["run", `${file}::variants`]);
    expect(result.code, result.stdout).toBe(1);
    expect(await apps()).not.toContain("e2e-options");
    return result.stderr;
  };

  it("refuses an option Skiff does not implement yet, and an unknown one, before anything runs", async () => {
    const gpu = await refused("options-gpu", (code) =>
      code.replace("{ memory: 128 }, async", '{ memory: 128, gpu: "A10G" }, async'),
    );
    expect(gpu).toMatch(
      /app\.function\(options\): option "gpu" is not supported yet \(Skiff has no GPUs yet\): remove it/,
    );
    expect(gpu).toMatch(/\.options-gpu\.ts:\d+:\d+/);
    // deploy points at the same line of the user's file, not at the bundle made from it.
    const withGpu = fixtureVariant(FIXTURE, "options-gpu", (code) =>
      code.replace("{ memory: 128 }, async", '{ memory: 128, gpu: "A10G" }, async'),
    );
    const deployed = await stack.run(["deploy", "--no-typecheck", withGpu]);
    expect(deployed.code).toBe(1);
    expect(deployed.stderr).toMatch(/\.options-gpu\.ts:\d+:\d+/);
    const unknown = await refused("options-unknown", (code) =>
      code.replace(
        "{ memory: 128 },\n  class {\n    @method() async generate",
        "{ memory: 128, webEndpoint: {} },\n  class {\n    @method() async generate",
      ),
    );
    expect(unknown).toMatch(/app\.cls\(options\): unknown option "webEndpoint"; known options: name, timeout/);
    const named = await refused("options-named", (code) =>
      code.replace(
        "{ memory: 128 },\n  class {\n    @method() async generate",
        '{ name: "Model", region: "eu" },\n  class {\n    @method() async generate',
      ),
    );
    expect(named).toMatch(/class "Model": option "region" is not supported yet/);
  });

  it("the server refuses the same in a manifest, naming the function and the option", async () => {
    const spec = {
      name: "resize",
      kind: "function",
      timeoutMs: 1000,
      retries: { maxRetries: 0, initialDelayMs: 0, backoffCoefficient: 1, maxDelayMs: 0 },
      cpu: 1,
      memoryMiB: 512,
      image: { base: "debian-bookworm", nodeMajor: 20 },
      minContainers: 0,
      maxContainers: 1,
      bufferContainers: 0,
      scaledownWindowMs: 1000,
      maxInputs: 1,
    };
    const create = (fn: object) =>
      post("/v1/apps", {
        manifest: { name: "raw", functions: [fn] },
        mode: "ephemeral",
        bundleHash: "0".repeat(64),
        localSecrets: {},
      });
    const gpu = await create({ ...spec, gpu: "A10G" });
    expect(gpu.status).toBe(400);
    expect(gpu.body.error?.message).toBe(
      'function "resize": option "gpu" is not supported yet (Skiff has no GPUs yet): remove it',
    );
    const typo = await create({ ...spec, memory: 512 });
    expect(typo.body.error?.message).toMatch(
      /^function "resize": unknown option "memory" \(did you mean "memoryMiB"\?\)/,
    );
    const tiny = await create({ ...spec, memoryMiB: 16 });
    expect(tiny.body.error?.message).toBe(
      'function "resize": option "memoryMiB": memory must be at least 64 MiB: Node needs that much to start',
    );
  });

  it("refuses at once what no worker can fit, with the largest worker's capacity", async () => {
    const started = Date.now();
    const cpu = await refused("options-cpu", (code) =>
      code.replace("{ memory: 128 }, async", "{ memory: 128, cpu: 64 }, async"),
    );
    expect(cpu).toMatch(/function "hog" asks for 64 CPUs; the only worker has \d+ CPUs and [\d.]+ GiB: lower cpu/);
    const memory = await refused("options-memory", (code) =>
      code.replace(
        "{ memory: 128 },\n  class {\n    @method() async generate",
        '{ memory: "500GiB" },\n  class {\n    @method() async generate',
      ),
    );
    expect(memory).toMatch(/class "Model" asks for 500 GiB; the only worker has \d+ CPUs and [\d.]+ GiB: lower memory/);
    const deployed = await stack.run(["deploy", "e2e/fixtures/.options-cpu.ts"]);
    expect(deployed.code, deployed.stdout).toBe(1);
    expect(deployed.stderr).toMatch(/function "hog" asks for 64 CPUs; the only worker has \d+ CPUs/);
    expect(await apps()).not.toContain("e2e-options");
    const tiny = await refused("options-tiny", (code) =>
      code.replace("{ memory: 128 }, async", "{ memory: 16 }, async"),
    );
    expect(tiny).toMatch(
      /function "hog": memory 16 MiB is too little: Node needs at least 64 MiB to start; raise memory/,
    );
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it("a container killed for memory while it starts says out-of-memory, not startupTimeout", async () => {
    const result = await stack.run(["run", `${FIXTURE}::startOom`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.results[0]).toEqual({
      greedy: "OUT_OF_MEMORY: the container ran out of memory (limit 128 MiB) while starting: raise `memory`",
    });
  });

  it("a call that waits for room says so while it waits", async () => {
    const result = await stack.run(["run", `${FIXTURE}::crowded`]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.results[0]).toEqual({ both: [4, 0] });
    expect(result.stdout).toMatch(
      /\[whole server\] waiting for capacity: function "whole" needs \d+ CPUs and 1 GiB; \d+ of \d+ CPUs in use/,
    );
  });

  it("withOptions runs a variant in its own pool with its own memory; the function is unchanged", async () => {
    const result = await stack.run(["run", `${FIXTURE}::variants`], { timeoutMs: 240_000 });
    expect(result.code, result.stderr).toBe(0);
    const outcome = result.results[0] as Record<string, unknown>;
    const oom = /^OUT_OF_MEMORY: the container ran out of memory \(limit 128 MiB\) while running this input/;
    expect(outcome.small).toMatch(oom);
    expect(outcome.unchanged).toMatch(oom);
    expect(outcome.big).toMatchObject({ held: 400 });
    expect(outcome.bigModel).toMatchObject({ held: 400 });
    // gVisor shows a container its own memory; runc shows the host's.
    if (stack.runtime === "gvisor") expect(outcome.big).toMatchObject({ totalmem: 1024 * 1024 * 1024 });
  });

  it("by name from a Node program: withOptions, and a class's missing method named with its methods", async () => {
    const detached = await stack.run(["run", `${FIXTURE}::startOom`, "--detach"]);
    expect(detached.code, detached.stderr).toBe(0);
    const program = await bundleProgram("e2e/fixtures/options-client.ts", stack.home);
    const result = await stack.runProgram<Record<string, unknown>>(program);
    expect(result.small).toMatch(/^OUT_OF_MEMORY: /);
    expect(result.big).toMatchObject({ held: 400 });
    expect(result.bigModel).toMatchObject({ held: 400 });
    expect(result.nosuch).toBe('BAD_REQUEST: class "Model" has no method "nosuch"; its methods are: generate, embed');
    expect(result.badVariant).toMatch(/^undefined: function "hog": withOptions: option "gpu" is not supported yet/);
    expect(result.tooBig).toMatch(/^BAD_REQUEST: function "hog" asks for 64 CPUs; the only worker has \d+ CPUs/);
  });
});
