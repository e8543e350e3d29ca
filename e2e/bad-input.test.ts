import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";

/** Each mistake gets one clear message that says what to do, and a non-zero exit. */
describe("bad input to skiff run", () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await Stack.start();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const fails = async (target: string) => {
    const result = await stack.run(["run", target]);
    expect(result.code).toBe(1);
    return result.stderr;
  };

  it("a file that does not exist", async () => {
    expect(await fails("e2e/fixtures/nope.ts")).toMatch(/e2e\/fixtures\/nope\.ts does not exist: check the path/);
  });

  it("a file with no app", async () => {
    expect(await fails("e2e/fixtures/bad-no-app.ts")).toMatch(
      /exports no App: add `export const app = new App\("name"\)`/,
    );
  });

  it("a name that is not in the file", async () => {
    const stderr = await fails("e2e/fixtures/calls.ts::nope");
    expect(stderr).toMatch(/has no entrypoint or function "nope"; it has: crash, errors, logs, mapMany/);
  });

  it("a package installed neither here nor by an image", async () => {
    const stderr = await fails("e2e/fixtures/bad-package.ts");
    expect(stderr).toContain(
      'e2e/fixtures/bad-package.ts:2: cannot find package "left-pad-nowhere": add it to your project (npm install left-pad-nowhere) or to the image (.npmInstall("left-pad-nowhere"))',
    );
    expect(stderr).not.toMatch(/[0-9a-f]{64}/);
  });

  it("a file that throws at import", async () => {
    const stderr = await fails("e2e/fixtures/bad-throws.ts");
    expect(stderr).toMatch(/bad-throws\.ts threw while loading:\nError: config is missing/);
    expect(stderr).toMatch(/bad-throws\.ts:4:\d+/);
    expect(stderr).toMatch(/fix the error and run again/);
  });

  it("a function option that makes no sense", async () => {
    expect(await fails("e2e/fixtures/bad-option.ts")).toMatch(
      /bad-option\.ts: function "f": timeout "ten minutes" is not a duration: use seconds \(30\) or a string like "500ms"/,
    );
  });

  it("a server that is not there", async () => {
    const result = await stack.run(["run", "e2e/fixtures/calls.ts::remote"], {
      env: { SKIFF_SERVER_URL: "http://127.0.0.1:9" },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /the Skiff server at http:\/\/127\.0\.0\.1:9 is not reachable: start it with `skiff up`/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it("a syntax error", async () => {
    const stderr = await fails("e2e/fixtures/bad-syntax.ts");
    expect(stderr).toMatch(/bad-syntax\.ts:5:\d+: Unexpected ";"/);
    expect(stderr).toMatch(/fix the code and run again/);
  });
});
