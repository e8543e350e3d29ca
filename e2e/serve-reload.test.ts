import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixtureVariant, Stack } from "./stack.js";
import { containersOf, type Served, startServe, waitUntil, webRuntimes } from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/serve-reload.ts";

/** What a web URL answers now: its status and body. */
async function answerOf(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

/**
 * `skiff serve` through the real CLI, gateway, worker relay and containers, on the paths its file takes
 * besides a clean reload: a file that does not type-check does not start; an edit that breaks the types is
 * refused with the compiler's report while the old code keeps serving (so is a syntax error), an edit back to
 * the served code says so and reloads nothing, and the fix reloads it; an edit
 * that renames an endpoint takes the old URL away (404) and answers at the new one.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`skiff serve's reloads on ${runtime.name}`, () => {
    let stack: Stack;
    let served: Served | undefined;
    /** The served copy of the fixture, under e2e/fixtures so that the repository's tsconfig.json checks it. */
    let file: string;
    const edit = (change: (code: string) => string) => writeFileSync(file, change(readFileSync(file, "utf8")));
    /** How many times `skiff serve` said it reloaded. */
    const reloads = () => served!.text.match(/^skiff reloaded .*serve-reload/gm)?.length ?? 0;
    const waitFor = (what: string, check: () => Promise<boolean>, ms?: number) => waitUntil(stack, what, check, ms);

    beforeAll(async () => {
      stack = await Stack.start({ runtime: runtime.name });
      file = fixtureVariant(FIXTURE, `serve-reload-${runtime.name}`, (code) => code);
    }, 120_000);

    afterAll(async () => {
      if (served && served.child.exitCode === null) {
        served.child.kill("SIGINT");
        await served.exited;
      }
      rmSync(file, { force: true });
      await stack?.stop();
    }, 120_000);

    // No container starts: the refusal is the CLI's alone, the same on every runtime.
    it.runIf(runtime === webRuntimes.find((r) => r.available))(
      "refuses to start a file that does not type-check, printing the compiler's report; no app is made",
      async () => {
        const broken = fixtureVariant(FIXTURE, `serve-reload-broken-${runtime.name}`, (code) =>
          code.replace('const VERSION = "v1"', 'const VERSION: number = "v1"'),
        );
        try {
          const refused = await stack.run(["serve", broken]);
          expect(refused.code).toBe(1);
          expect(refused.stderr).toMatch(/\.serve-reload-broken-\S+\.ts does not type-check \(under tsconfig\.json\):/);
          expect(refused.stderr).toMatch(/\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
          expect(refused.stderr).toContain("not served: fix the types, or serve anyway with --no-typecheck");
          const { apps } = await stack.api<{ apps: { name: string }[] }>("/v1/apps");
          expect(apps.filter((app) => app.name === "e2e-serve-reload")).toEqual([]);
        } finally {
          rmSync(broken, { force: true });
        }
      },
      120_000,
    );

    it("refuses a reload whose edit breaks the types, printing them, and keeps serving the old code; the fix reloads", async () => {
      served = startServe(stack, file);
      const ping = await served.url("ping");
      expect(ping).toBe(`${stack.url}/w/main/e2e-serve-reload/ping`);
      expect(served.text).toMatch(/type-checked with TypeScript \d+\.\d+\.\d+ \(tsconfig\.json\)/);
      await waitFor("v1 answers", async () => (await answerOf(`${ping}/a`)).body === "v1 /a");

      // Bundles and loads (types are stripped), but does not type-check.
      edit((code) => code.replace('const VERSION = "v1"', 'const VERSION: number = "v2"'));
      await served.printed("the reload is refused", /the old code keeps serving/, 60_000);
      expect(served.text).toMatch(/serve-reload-\S+\.ts changed but was not reloaded: \S+ does not type-check/);
      expect(served.text).toMatch(/\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
      expect(reloads()).toBe(0);
      expect(await answerOf(`${ping}/b`)).toEqual({ status: 200, body: "v1 /b" });
      // No new version was made: the containers that run are the first version's.
      const versions = (await containersOf(stack, "ping")).map((c) => c.version);
      expect(versions.length).toBeGreaterThan(0);
      expect(new Set(versions)).toEqual(new Set([1]));

      // Back to the served code: nothing to reload, and serve says so rather than nothing.
      edit((code) => code.replace('const VERSION: number = "v2"', 'const VERSION = "v1"'));
      await served.printed("the served code is back", /serve-reload-\S+\.ts is back to the code that serves/, 60_000);
      // A syntax error: the old code keeps serving, and serve says to save again, not to run again.
      edit((code) => code.replace('const VERSION = "v1"', 'const VERSION = = "v1"'));
      await served.printed("the syntax error is refused", /Unexpected "="[\s\S]*the old code keeps serving/, 60_000);
      expect(served.text).not.toContain("run again");
      expect(reloads()).toBe(0);

      edit((code) => code.replace('const VERSION = = "v1"', 'const VERSION = "v2"'));
      await served.printed("the fix reloads", /^skiff reloaded .*serve-reload/m, 60_000);
      await waitFor("v2 answers", async () => (await answerOf(`${ping}/c`)).body === "v2 /c", 120_000);
    }, 600_000);

    it("takes a renamed endpoint's old URL away (404) and answers at its new one", async () => {
      const ping = await served!.url("ping");
      const hello = await served!.url("hello");
      expect(await answerOf(hello)).toEqual({ status: 200, body: "v2 hello" });
      const before = reloads();

      edit((code) =>
        code
          .replace('const VERSION = "v2"', 'const VERSION = "v3"')
          .replace("export const hello = app.endpoint", "export const welcome = app.endpoint"),
      );
      const welcome = await served!.url("welcome", 60_000);
      expect(welcome).toBe(`${stack.url}/w/main/e2e-serve-reload/welcome`);
      expect(reloads()).toBe(before + 1);
      await waitFor("welcome answers", async () => (await answerOf(welcome)).status === 200, 120_000);
      expect(await answerOf(welcome)).toEqual({ status: 200, body: "v3 hello" });
      await waitFor("hello's URL answers 404", async () => (await answerOf(hello)).status === 404, 15_000);
      expect((await answerOf(hello)).body).toContain("no web endpoint at this URL");
      await waitFor("ping answers from v3", async () => (await answerOf(`${ping}/d`)).body === "v3 /d", 120_000);

      served!.child.kill("SIGINT");
      expect(await served!.exited).toBe(0);
      await waitFor("no container of the served app is left", async () => {
        const left = await Promise.all(["ping", "hello", "welcome"].map((fn) => containersOf(stack, fn)));
        return left.flat().length === 0;
      });
    }, 600_000);
  });
}
