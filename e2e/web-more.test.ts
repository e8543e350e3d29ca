import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Stack } from "./stack.js";
import { curl, curlAvailable, deployedStack, rssGrowthDuring, webRuntimes } from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web-more.ts";
const MiB = 1024 * 1024;

const HOST = "slow-e2e-web-more.main.apps.test";

/**
 * Web functions through the real CLI, gateway, relay and containers, on a server with host routing
 * (SKIFF_WEB_URL): `LABEL-APP.ENV.DOMAIN` answers; a request past `redirectAfter` is answered 303 to its
 * result URL, which curl -L and fetch follow to the answer; a web function calls another function; a
 * container that dies mid-request is a 502 naming the request, and the next request gets a new container.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`more web functions on ${runtime.name}`, () => {
    let stack: Stack;
    let urls: Record<string, string>;
    /** curl's arguments that send HOST's connections to the stack's port. */
    let toStack: string[];

    beforeAll(async () => {
      ({ stack, urls } = await deployedStack(runtime.name, FIXTURE, {
        serverEnv: { SKIFF_WEB_URL: "http://apps.test" },
      }));
      toStack = ["--connect-to", `${HOST}:80:127.0.0.1:${new URL(stack.url).port}`];
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it("prints the host URL, and answers at it and at the /w path alike", async () => {
      expect(urls).toMatchObject({ slow: `http://${HOST}`, squares: "http://squares-e2e-web-more.main.apps.test" });
      const byPath = await fetch(`${stack.url}/w/main/e2e-web-more/slow/items/1`);
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
      const url = `${stack.url}/w/main/e2e-web-more/slow/work?ms=2500`;
      const first = await fetch(url, { method: "POST", body: "x", redirect: "manual" });
      expect(first.status).toBe(303);
      const location = new URL(first.headers.get("location")!, stack.url).href;
      expect(location).toContain("/w/main/e2e-web-more/slow/__skiff/result/");
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

    it("calls another function of its app from a web function, with its container's token", async () => {
      const answer = await fetch(`${stack.url}/w/main/e2e-web-more/squares?n=12`);
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ n: 12, squared: 144, many: [1, 4, 9] });
    }, 240_000);

    it("answers 502 naming the request when its container dies mid-request; the next request gets a new container", async () => {
      const base = `${stack.url}/w/main/e2e-web-more/fragile`;
      const before = (await (await fetch(`${base}/who`)).json()) as { container: string };
      const died = await fetch(`${base}/die`);
      expect(died.status).toBe(502);
      const requestId = died.headers.get("x-skiff-request-id")!;
      const { error } = (await died.json()) as { error: { code: string; message: string; requestId: string } };
      expect(error.requestId).toBe(requestId);
      expect(error.message).toContain(requestId);
      const after = await fetch(`${base}/who`);
      expect(after.status).toBe(200);
      expect(((await after.json()) as { container: string }).container).not.toBe(before.container);
      expect((await fetch(`${stack.url}/v1/health`)).ok).toBe(true);
    }, 240_000);

    it("streams a 300 MiB download to the client; neither server nor worker holds it", async () => {
      const mib = 300;
      const expected = createHash("sha256");
      for (let i = 0; i < mib; i++) expected.update(Buffer.alloc(MiB, i % 251));
      const url = `${stack.url}/w/main/e2e-web-more/download`;
      await (await fetch(`${url}?mib=1`)).arrayBuffer();
      const got = createHash("sha256");
      let bytes = 0;
      const growth = await rssGrowthDuring(stack, async () => {
        const response = await fetch(`${url}?mib=${mib}`);
        expect(response.status).toBe(200);
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          got.update(chunk);
          bytes += chunk.length;
        }
      });
      expect(bytes).toBe(mib * MiB);
      expect(got.digest("hex")).toBe(expected.digest("hex"));
      expect(growth.server, "the server's RSS growth (MiB)").toBeLessThan(80);
      expect(growth.worker, "the worker's RSS growth (MiB)").toBeLessThan(80);
    }, 300_000);
  });
}
