import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureVariant, Stack } from "./stack.js";

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

  it("a flag the entrypoint does not take, or arguments of the wrong kind", async () => {
    const flag = await stack.run(["run", "e2e/fixtures/calls.ts::mapMany", "--bogus-flag", "3"]);
    expect(flag.code).toBe(1);
    expect(flag.stderr).toContain(
      "e2e/fixtures/calls.ts::mapMany has no flag --bogus-flag: its flags are --n (the keys its parameter destructures)",
    );
    const none = await stack.run(["run", "e2e/fixtures/calls.ts::remote", "--n", "3"]);
    expect(none.stderr).toContain("e2e/fixtures/calls.ts::remote has no flag --n: it takes no flags");
    const positional = await stack.run(["run", "e2e/fixtures/calls.ts::mapMany", "7"]);
    expect(positional.stderr).toContain("it takes flags (--n), not positional arguments (7)");
    // --help is not an unknown flag: it shows the entrypoint's flags and runs nothing.
    const help = await stack.run(["run", "e2e/fixtures/calls.ts::mapMany", "--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("usage: skiff run e2e/fixtures/calls.ts::mapMany [--detach] [--n VALUE]");
    // Refused before the app is created: no app was made for any of them.
    const { apps } = await stack.api<{ apps: { name: string }[] }>("/v1/apps");
    expect(apps.filter((app) => app.name === "e2e-calls")).toEqual([]);
  });

  it("help that says run does not type-check and deploy does", async () => {
    const run = await stack.run(["help", "run"]);
    expect(run.stdout.replace(/\s+/g, " ")).toContain("FILE is bundled, not type-checked (`skiff deploy` type-checks)");
    const deploy = await stack.run(["help", "deploy"]);
    expect(deploy.stdout).toContain("--no-typecheck");
  });

  it("a deploy of a file that does not type-check, unless --no-typecheck", async () => {
    const file = fixtureVariant("e2e/fixtures/calls.ts", "bad-types", (code) =>
      code.replace("export const app", 'export const wrong: number = "not a number";\nexport const app'),
    );
    try {
      const refused = await stack.run(["deploy", file]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/\.bad-types\.ts does not type-check \(under tsconfig\.json\):/);
      expect(refused.stderr).toMatch(/\.bad-types\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable/);
      expect(refused.stderr).toContain("not deployed: fix the types, or deploy anyway with --no-typecheck");
      const forced = await stack.run(["deploy", file, "--no-typecheck"], { timeoutMs: 300_000 });
      expect(forced.code, forced.stderr).toBe(0);
      expect(forced.stderr).not.toContain("type-check");
    } finally {
      rmSync(file, { force: true });
    }
  }, 400_000);

  it("`skiff run --help` in FILE's place: the command's help, not a file named --help", async () => {
    const help = await stack.run(["run", "--help"]);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("Usage: skiff run [options] <target>");
    expect(help.stderr).not.toContain("does not exist");
  });

  it("a syntax error", async () => {
    const stderr = await fails("e2e/fixtures/bad-syntax.ts");
    expect(stderr).toMatch(/bad-syntax\.ts:5:\d+: Unexpected ";"/);
    expect(stderr).toMatch(/fix the code and run again/);
  });
});
