import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { fixtureVariant, NO_TYPECHECK, ROOT, Stack } from "./stack.js";
import {
  containersOf,
  type LoadSample,
  loadLoop,
  percentile,
  startServe,
  urlsIn,
  waitUntil,
  webRuntimes,
} from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web-rolling.ts";
const SERVER_FIXTURE = "e2e/fixtures/web-rolling-server.ts";
/** Eight clients: each request is a quick one, or one in four times one that takes 1.5 s (in flight across a stop). */
const LOAD = { clients: 8, paths: ["/quick", "/quick", "/quick", "/slow"] };

/** The samples that are not a 200 from some version, for a failure message. */
const failed = (samples: LoadSample[]) => samples.filter((s) => s.status !== 200 || !/^v\d+ \//.test(s.body));

/** Requests sent after the first answer of `version` that another version answered: the switch goes one way. */
function olderAfter(samples: LoadSample[], version: string): LoadSample[] {
  const first = Math.min(...samples.filter((s) => s.body.startsWith(version)).map((s) => s.at));
  return samples.filter((s) => s.sentAt > first && !s.body.startsWith(version));
}

/**
 * Requests the `old` version answered after `next` had answered one: they were in flight on an old
 * container when it was told to stop, and it finished them.
 */
function finishedOnOld(samples: LoadSample[], old: string, next: string): LoadSample[] {
  const first = Math.min(...samples.filter((s) => s.body.startsWith(next)).map((s) => s.at));
  return samples.filter((s) => s.at > first && s.body.startsWith(old));
}

/** Latency figures of the samples, for the test's log: what a client saw while versions changed. */
function latency(samples: LoadSample[]): string {
  const quick = samples.filter((s) => s.path === "/quick").map((s) => s.ms);
  return `${samples.length} requests, quick ones p50 ${percentile(quick, 50)} ms, p99 ${percentile(quick, 99)} ms, max ${percentile(quick, 100)} ms`;
}

/**
 * New versions under load, through the real CLI, gateway, worker relay and containers: a `skiff deploy`
 * of a changed app, twice, and a `skiff serve` whose file changes. No request fails, requests in flight
 * finish on the old containers, and answers switch to the new code.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`new versions of a web app under load on ${runtime.name}`, () => {
    let stack: Stack;
    const waitFor = (what: string, check: () => Promise<boolean>, ms?: number) => waitUntil(stack, what, check, ms);

    beforeAll(async () => {
      stack = await Stack.start({ runtime: runtime.name });
    }, 120_000);

    afterEach(async () => {
      // The next test serves an app with the same label: this one must not hold it, whatever happened.
      const stopped = await stack?.run(["app", "stop", "e2e-web-rolling"]);
      if (stopped && stopped.code !== 0 && !/no running app/.test(stopped.stderr)) throw new Error(stopped.stderr);
    });

    afterAll(async () => {
      await stack?.stop();
    });

    it("deploys two new versions while 8 clients send requests: none fails, answers switch to each new version", async () => {
      // Version 3 renames the function and keeps its label: its URL moves to another pool.
      const deploy = async (version: string) => {
        const file = fixtureVariant(FIXTURE, `web-rolling-${version}`, (code) => {
          const changed = code.replace('const VERSION = "v1"', `const VERSION = "${version}"`);
          if (version !== "v3") return changed;
          return changed.replace(
            "export const rolling = app.web({",
            'export const renamed = app.web({ label: "rolling",',
          );
        });
        const deployed = await stack.run(["deploy", file, NO_TYPECHECK], { timeoutMs: 300_000 });
        expect(deployed.code, deployed.stderr).toBe(0);
        return urlsIn(deployed.stderr).rolling!;
      };
      const url = await deploy("v1");
      expect(url).toBe(`${stack.url}/w/main/e2e-web-rolling/rolling`);
      expect(await fetch(`${url}/quick`).then((r) => r.text())).toBe("v1 /quick");

      const load = loadLoop(url, LOAD);
      try {
        await new Promise((r) => setTimeout(r, 1000));
        for (const version of ["v2", "v3"]) {
          const started = Date.now();
          expect(await deploy(version)).toBe(url);
          await waitFor(`answers come from ${version}`, async () => load.seen(version), 120_000);
          console.log(
            `[${runtime.name}] deploy of ${version}: first answer ${Date.now() - started} ms after the deploy began`,
          );
        }
        // Every container of an older version stops once its requests are answered.
        await waitFor("only version 3 runs", async () => (await containersOf(stack, "rolling")).length === 0);
        // Load on version 3 alone for a while: no older version answers after it, and the run has requests
        // enough (the deploys take a second or two each).
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        const samples = await load.stop();
        console.log(`[${runtime.name}] rolling deploys: ${latency(samples)}`);
        expect(failed(samples)).toEqual([]);
        expect(samples.length).toBeGreaterThan(100);
        // Once a version answers, no older one does: the switch happens once, not back and forth.
        expect(olderAfter(samples, "v2").filter((s) => s.body.startsWith("v1"))).toEqual([]);
        expect(olderAfter(samples, "v3")).toEqual([]);
        // Slow requests in flight when the old containers stopped were answered by them.
        expect(finishedOnOld(samples, "v1", "v2").length).toBeGreaterThan(0);
      }
      const list = await stack.run(["app", "list"]);
      expect(list.stdout).toMatch(/\te2e-web-rolling\tdeployed\trunning\tv3\t/);
      expect(urlsIn(list.stdout)).toEqual({ rolling: url });
      const history = await stack.run(["app", "history", "e2e-web-rolling"]);
      expect(urlsIn(history.stdout)).toEqual({ rolling: url });
    }, 900_000);

    it("replaces a server on a port (app.webServer) under load: none fails, and the old container goes once it has answered", async () => {
      const deploy = async (version: string) => {
        const file = fixtureVariant(SERVER_FIXTURE, `web-rolling-server-${version}`, (code) =>
          code.replace('const VERSION = "v1"', `const VERSION = "${version}"`),
        );
        const deployed = await stack.run(["deploy", file, NO_TYPECHECK], { timeoutMs: 300_000 });
        expect(deployed.code, deployed.stderr).toBe(0);
        return urlsIn(deployed.stderr).portal!;
      };
      const url = await deploy("v1");
      await waitFor("v1 answers", async () => (await fetch(`${url}/quick`).then((r) => r.text())) === "v1 /quick");
      const load = loadLoop(url, LOAD);
      try {
        await new Promise((r) => setTimeout(r, 1000));
        await deploy("v2");
        await waitFor("answers come from v2", async () => load.seen("v2"), 120_000);
        const switched = Date.now();
        // Its server closes once the relay lets go of its connections: sooner than node:http's own 5 s
        // keep-alive timeout would close them, and long before the worker would kill the container.
        await waitFor(
          "the v1 container is gone",
          async () => (await containersOf(stack, "portal")).every((c) => c.version === 2),
          4_000,
        );
        console.log(
          `[${runtime.name}] webServer: the old container was gone ${Date.now() - switched} ms after v2 answered`,
        );
      } finally {
        const samples = await load.stop();
        console.log(`[${runtime.name}] webServer rolling deploy: ${latency(samples)}`);
        expect(failed(samples)).toEqual([]);
        expect(olderAfter(samples, "v2")).toEqual([]);
        await stack.run(["app", "stop", "e2e-web-rolling-server"]);
      }
    }, 600_000);

    it("reloads `skiff serve` on a change to its file while 8 clients send requests: none fails; a broken change keeps the old code", async () => {
      const dir = mkdtempSync(join(tmpdir(), "skiff-serve-"));
      const file = join(dir, "app.ts");
      copyFileSync(join(ROOT, FIXTURE), file);
      writeFileSync(file, readFileSync(file, "utf8").replace('"e2e-web-rolling"', '"e2e-web-reload"'));
      const served = startServe(stack, file, [NO_TYPECHECK]);
      let load: ReturnType<typeof loadLoop> | undefined;
      try {
        const url = await served.url("rolling");
        expect(url).toBe(`${stack.url}/w/main/e2e-web-reload/rolling`);
        await waitFor("v1 answers", async () => (await fetch(`${url}/quick`).then((r) => r.text())) === "v1 /quick");

        load = loadLoop(url, LOAD);
        await new Promise((r) => setTimeout(r, 1000));
        const edited = Date.now();
        writeFileSync(file, readFileSync(file, "utf8").replace('const VERSION = "v1"', 'const VERSION = "v2"'));
        await waitFor("answers come from v2", async () => load!.seen("v2"), 120_000);
        console.log(`[${runtime.name}] skiff serve reload: first new answer ${Date.now() - edited} ms after the edit`);
        expect(served.text).toMatch(/reloaded .*app\.ts/);

        // A change that does not build is printed, and the running code keeps serving.
        writeFileSync(file, readFileSync(file, "utf8").replace("export const rolling", "export const rolling = ="));
        await served.printed("the error is printed", /old code keeps serving/, 30_000);
        await new Promise((r) => setTimeout(r, 1000));
        expect(await fetch(`${url}/quick`).then((r) => r.text())).toBe("v2 /quick");

        const samples = await load.stop();
        load = undefined;
        console.log(`[${runtime.name}] skiff serve reload: ${latency(samples)}`);
        expect(failed(samples)).toEqual([]);
        expect(olderAfter(samples, "v2")).toEqual([]);
        // Whether a slow request was in flight at the switch is up to timing here (the deploy test makes
        // sure of one and asserts it finishes on the old code): logged, not asserted.
        console.log(
          `[${runtime.name}] skiff serve reload: ${finishedOnOld(samples, "v1", "v2").length} request(s) finished on the old code after the switch`,
        );

        served.child.kill("SIGINT");
        expect(await served.exited).toBe(0);
        await waitFor(
          "no container of the served app is left",
          async () => (await containersOf(stack, "rolling")).length === 0,
          60_000,
        );
      } finally {
        await load?.stop();
        served.child.kill("SIGKILL");
        rmSync(dir, { recursive: true, force: true });
      }
    }, 600_000);
  });
}
