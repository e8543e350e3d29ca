import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Stack } from "./stack.js";
import { curl, curlAvailable, urlsIn, webRuntimes } from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web-long.ts";
const HOST = "slow-e2e-web-long.main.apps.test";

/**
 * Host routing and long requests through the real CLI, gateway, relay and containers: a server with
 * SKIFF_WEB_URL answers `LABEL-APP.ENV.DOMAIN`, and a request past `redirectAfter` is answered 303 to its
 * result URL, which curl -L and fetch follow to the answer.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`host names and long requests on ${runtime.name}`, () => {
    let stack: Stack;
    let urls: Record<string, string>;
    /** curl's arguments that send HOST's connections to the stack's port. */
    let toStack: string[];

    beforeAll(async () => {
      stack = await Stack.start({ runtime: runtime.name, serverEnv: { SKIFF_WEB_URL: "http://apps.test" } });
      toStack = ["--connect-to", `${HOST}:80:127.0.0.1:${new URL(stack.url).port}`];
      const deployed = await stack.run(["deploy", FIXTURE], { timeoutMs: 300_000 });
      expect(deployed.code, deployed.stderr).toBe(0);
      urls = urlsIn(deployed.stderr);
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it("prints the host URL, and answers at it and at the /w path alike", async () => {
      expect(urls).toEqual({ slow: `http://${HOST}` });
      const byPath = await fetch(`${stack.url}/w/main/e2e-web-long/slow/items/1`);
      expect(byPath.status).toBe(200);
      expect(await byPath.json()).toMatchObject({ path: "/items/1", ms: 0 });
      if (curlAvailable) {
        const byHost = await curl([...toStack, `http://${HOST}/items/2`]);
        expect(byHost.status).toBe(200);
        expect(JSON.parse(byHost.body)).toMatchObject({ path: "/items/2", host: HOST });
        const wrongApp = await curl([
          "--connect-to",
          `slow-nope.main.apps.test:80:127.0.0.1:${new URL(stack.url).port}`,
          "http://slow-nope.main.apps.test/",
        ]);
        expect(wrongApp.status).toBe(404);
      }
    }, 240_000);

    it("answers a request past redirectAfter 303 to its result URL, which gets the answer once", async () => {
      const url = `${stack.url}/w/main/e2e-web-long/slow/work?ms=2500`;
      const first = await fetch(url, { method: "POST", body: "x", redirect: "manual" });
      expect(first.status).toBe(303);
      const location = new URL(first.headers.get("location")!, stack.url).href;
      expect(location).toContain("/w/main/e2e-web-long/slow/__skiff/result/");
      await first.text();
      // Following it waits for the answer (up to redirectAfter at a time).
      const done = await fetch(location);
      expect(done.status).toBe(200);
      expect(await done.json()).toMatchObject({ path: "/work", ms: 2500, method: "POST" });
      expect((await fetch(location)).status).toBe(404);
      // fetch and curl -L follow on their own, on a host name too.
      const followed = await fetch(url);
      expect(followed.redirected).toBe(true);
      expect(await followed.json()).toMatchObject({ ms: 2500 });
      if (curlAvailable) {
        const byCurl = await curl(["-L", ...toStack, "-d", "{}", `http://${HOST}/train?ms=2200`]);
        expect(byCurl.status).toBe(200);
        expect(JSON.parse(byCurl.body)).toMatchObject({ path: "/train", ms: 2200 });
      }
    }, 240_000);
  });
}
