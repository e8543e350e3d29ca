import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { HOSTILE } from "./fixtures/hostile.js";
import { fixtureVariant, NO_TYPECHECK, ROOT, type Stack } from "./stack.js";
import {
  cliListsContainerOf,
  closeOf,
  containersOf,
  curl,
  curlAvailable,
  deployedStack,
  dialWebSocket,
  echoLatency,
  eventTimes,
  exerciseEcho,
  generatedBody,
  nextMessage,
  openWebSocket,
  rssGrowthDuring,
  startServe,
  textOf,
  uploadChunk,
  waitUntil,
  webRuntimes,
} from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web.ts";
const SERVE_FIXTURE = "e2e/fixtures/web-serve.ts";
const MiB = 1024 * 1024;
/** Debian's Chromium: playwright-core brings no browser, and none can be downloaded here. */
const CHROMIUM = "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `web.test: the /docs page in Chromium is skipped: ${CHROMIUM} is absent (scripts/setup.sh installs it as root)`,
  );
}
/** Where CI keeps what a run leaves to look at (`.ci/run` says so); ignored by git. */
const ARTIFACTS = join(ROOT, ".ci", "artifacts");
/** The page is the same on every runtime: one is enough. */
const docsPageRuntime = webRuntimes.find((r) => r.available)?.name;

/**
 * Web functions through the real CLI, server gateway, worker relay and containers, with real HTTP clients
 * (node's fetch, which is undici, and curl): typed endpoints, a Hono app, streaming both ways, concurrency
 * per container, scale from zero, the errors a client can cause, `skiff serve`, and an endpoint's /docs page
 * in a browser.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`web functions on ${runtime.name}`, () => {
    let stack: Stack;
    let urls: Record<string, string>;

    const containers = (fn: string) => containersOf(stack, fn);
    const waitFor = (what: string, check: () => Promise<boolean>, ms?: number) => waitUntil(stack, what, check, ms);

    beforeAll(async () => {
      ({ stack, urls } = await deployedStack(runtime.name, FIXTURE));
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it("prints one URL per web function when it deploys, on the server's port", () => {
      const base = `${stack.url}/w/main/e2e-web`;
      expect(urls).toEqual({
        gen: `${base}/gen`,
        hello: `${base}/hello`,
        site: `${base}/site`,
        broken: `${base}/broken`,
        solo: `${base}/solo`,
      });
    });

    it("answers a JSON endpoint, with 422 and the issues for a body off its schema, 400 for one that is not JSON, 413 over its limit", async () => {
      const post = (body: string) =>
        fetch(urls.gen!, { method: "POST", headers: { "content-type": "application/json" }, body });
      const ok = await post(JSON.stringify({ prompt: "a cat" }));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ status: "generated", prompt: "a cat", steps: 20 });

      if (curlAvailable) {
        const json = ["-H", "content-type: application/json", "-d", '{"prompt":"a dog","steps":3}'];
        const byCurl = await curl(["-X", "POST", urls.gen!, ...json]);
        expect(byCurl.status).toBe(200);
        expect(JSON.parse(byCurl.body)).toEqual({ status: "generated", prompt: "a dog", steps: 3 });
      }

      const invalid = await post(JSON.stringify({ prompt: 5 }));
      expect(invalid.status).toBe(422);
      const { error } = (await invalid.json()) as { error: { code: string; issues: { path: unknown[] }[] } };
      expect(error.issues.map((issue) => issue.path)).toEqual([["prompt"]]);

      const malformed = await post('{"prompt": ');
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as { error: { message: string } }).error.message).toMatch(/not JSON/);

      const huge = await post(JSON.stringify({ prompt: "x".repeat(2 * MiB) }));
      expect(huge.status).toBe(413);

      // The server stays healthy under all of them.
      expect((await fetch(`${stack.url}/v1/health`)).ok).toBe(true);
    }, 240_000);

    it("answers a GET endpoint with its query parsed, and a default where it is missing", async () => {
      const named = await fetch(`${urls.hello}?name=skiff`);
      expect(named.status).toBe(200);
      expect(await named.text()).toBe("Hello, skiff!");
      expect(await (await fetch(urls.hello!)).text()).toBe("Hello, world!");
      if (curlAvailable) expect(await curl([`${urls.hello}?name=curl`])).toEqual({ status: 200, body: "Hello, curl!" });
    }, 240_000);

    it("serves /openapi.json (OpenAPI 3.1 listing the endpoint) and a /docs page", async () => {
      const response = await fetch(`${urls.gen}/openapi.json`);
      expect(response.status).toBe(200);
      const document = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
      expect(document.openapi).toMatch(/^3\.1\./);
      expect(Object.values(document.paths).some((path) => "post" in path)).toBe(true);
      expect(JSON.stringify(document)).toContain("prompt");

      const docs = await fetch(`${urls.gen}/docs`);
      expect(docs.status).toBe(200);
      expect(docs.headers.get("content-type")).toMatch(/text\/html/);
    }, 240_000);

    /**
     * An endpoint's `/docs` page in a real browser (Debian's Chromium, headless, driven by playwright-core):
     * it lists the endpoint, its form sends a request and shows the answer, markup in a schema shows as
     * text, and nothing but the endpoint's own URLs is fetched. The page is saved as
     * `.ci/artifacts/docs-page.png`.
     */
    it.runIf(hasChromium && runtime.name === docsPageRuntime)(
      "shows a /docs page in Chromium that lists the endpoint and its schema, runs none of the schema's markup, and answers through its form",
      async () => {
        const gen = urls.gen!;
        // As root, Chromium's sandbox cannot start: the page is our own, served on loopback.
        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
        const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
        const errors: string[] = [];
        const elsewhere: string[] = [];
        page.on("pageerror", (error) => errors.push(error.message));
        page.on("dialog", (dialog) => {
          errors.push(`a dialog opened: ${dialog.message()}`);
          void dialog.dismiss();
        });
        page.on("request", (request) => {
          if (!request.url().startsWith(stack.url)) elsewhere.push(request.url());
        });

        try {
          await checkPage();
        } finally {
          // The page as it ended, for CI's artifacts: a failure shows what the browser had.
          mkdirSync(ARTIFACTS, { recursive: true });
          await page.screenshot({ path: join(ARTIFACTS, "docs-page.png"), fullPage: true });
          await browser.close();
        }
        expect(errors).toEqual([]);
        expect(elsewhere).toEqual([]);

        async function checkPage(): Promise<void> {
          const loaded = await page.goto(`${gen}/docs`);
          expect(loaded?.status()).toBe(200);
          const operation = page.locator("#operation");
          await expect.poll(() => operation.locator(".method").textContent()).toBe("POST");
          expect(await page.locator("h1").textContent()).toBe("generate");
          expect(await operation.locator("code.url").textContent()).toBe(`${gen}/`);
          const fields = operation.locator("table.fields").first();
          expect(await fields.locator("td.name").allTextContents()).toEqual(["prompt", "steps", "style"]);
          expect(await fields.locator("td.type").allTextContents()).toEqual(["string", "integer", "string"]);
          expect(await fields.locator("td.notes").allTextContents()).toEqual([
            "required",
            "default 20",
            `default ${JSON.stringify(HOSTILE)}`,
          ]);

          // The markup is shown as the text it is: in the fields, the raw schema and the form's default.
          expect(await fields.locator("tr").nth(1).locator("td").last().textContent()).toBe(
            `What to generate. ${HOSTILE}`,
          );
          expect(await operation.locator("details pre").textContent()).toContain(
            JSON.stringify(`What to generate. ${HOSTILE}`),
          );
          const example = JSON.parse(await page.locator("#body").inputValue()) as Record<string, unknown>;
          expect(example).toEqual({ prompt: "", steps: 20, style: HOSTILE });
          expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
          expect(await page.locator("#operation img, #operation script").count()).toBe(0);

          // A refusal, as the form shows it; then an answer, which the screenshot keeps.
          await page.locator("#body").fill(JSON.stringify({ prompt: 5 }));
          await page.locator("#send").click();
          // The request may start a container.
          await expect.poll(() => page.locator("#status").textContent(), { timeout: 120_000 }).toMatch(/^422/);
          expect(await page.locator("#response").textContent()).toContain('"prompt"');
          await page.locator("#body").fill(JSON.stringify({ prompt: "a cat, from Chromium", steps: 3 }));
          await page.locator("#send").click();
          await expect.poll(() => page.locator("#status").textContent(), { timeout: 30_000 }).toBe("200 OK");
          const answer = JSON.parse((await page.locator("#response").textContent()) ?? "") as unknown;
          expect(answer).toEqual({ status: "generated", prompt: "a cat, from Chromium", steps: 3 });
        }
      },
      240_000,
    );

    it("routes a Hono app's paths, each seeing the path after its label", async () => {
      expect(await (await fetch(urls.site!)).text()).toBe("home");
      expect(await (await fetch(`${urls.site}/items/42?q=x`)).json()).toEqual({ id: "42", q: "x", path: "/items/42" });
      const echoed = await fetch(`${urls.site}/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ a: [1, 2] }),
      });
      expect(await echoed.json()).toEqual({ got: { a: [1, 2] }, type: "application/json" });
      expect((await fetch(`${urls.site}/no-such-route`)).status).toBe(404);
      if (curlAvailable) {
        const byCurl = await curl([`${urls.site}/items/7`]);
        expect(byCurl.status).toBe(200);
        expect(JSON.parse(byCurl.body)).toEqual({ id: "7", q: null, path: "/items/7" });
      }
    }, 240_000);

    it("streams server-sent events as they are written, to fetch and to curl -N", async () => {
      await fetch(urls.site!); // a warm container: the timing below is the stream's, not a container start's
      const response = await fetch(`${urls.site}/events`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
      const times = await eventTimes(textOf(response.body!));
      expect(times).toHaveLength(3);
      // Written 200 ms apart: had the stream been buffered, all three would arrive at once.
      expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(300);

      if (curlAvailable) {
        const child = spawn("curl", ["-sS", "-N", `${urls.site}/events`], { stdio: ["ignore", "pipe", "inherit"] });
        const curlTimes = await eventTimes(child.stdout.setEncoding("utf8"));
        expect(curlTimes).toHaveLength(3);
        expect(curlTimes[2]! - curlTimes[0]!).toBeGreaterThanOrEqual(300);
      }
    }, 240_000);

    it("streams a 200 MiB upload to the handler, which returns its SHA-256; neither server nor worker holds it", async () => {
      const chunks = 200;
      const expected = createHash("sha256");
      for (let i = 0; i < chunks; i++) expected.update(uploadChunk(i));

      await fetch(urls.site!);
      const growth = await rssGrowthDuring(stack, async () => {
        const response = await fetch(`${urls.site}/upload`, {
          method: "POST",
          headers: { "content-type": "application/octet-stream" },
          body: generatedBody(chunks),
          duplex: "half",
        } as RequestInit);
        expect(response.status).toBe(200);
        expect(await response.json()).toEqual({ sha256: expected.digest("hex"), bytes: chunks * MiB });
      });
      expect(growth.server, "the server's RSS growth (MiB)").toBeLessThan(80);
      expect(growth.worker, "the worker's RSS growth (MiB)").toBeLessThan(80);
    }, 300_000);

    it("runs up to maxInputs requests at once in one container", async () => {
      await fetch(`${urls.site}/slow?ms=0`);
      const started = Date.now();
      const answers = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const response = await fetch(`${urls.site}/slow?ms=2000`);
          expect(response.status).toBe(200);
          return (await response.json()) as { container: string };
        }),
      );
      // One after another they would take 8 s; at once, a little over 2.
      expect(Date.now() - started).toBeLessThan(6000);
      expect(new Set(answers.map((a) => a.container)).size).toBe(1);
    }, 240_000);

    it("answers 404 for an unknown URL, saying nothing of what exists elsewhere", async () => {
      for (const path of ["/w/main/e2e-web/nope", "/w/main/no-such-app/gen", "/w/main.other/e2e-web/gen", "/w/x"]) {
        const response = await fetch(`${stack.url}${path}`);
        expect(response.status, path).toBe(404);
        // The same answer whatever exists: only the request's own id differs.
        const { error } = (await response.json()) as { error: Record<string, unknown> };
        const { requestId: _, ...rest } = error;
        expect(rest, path).toEqual({ code: "NOT_FOUND", message: "no web endpoint at this URL" });
      }
    }, 60_000);

    it("takes WebSockets to a Hono route: text, binary and 1 MiB messages, close codes both ways", async () => {
      await exerciseEcho(`${urls.site}/ws`);
      const dialed = await dialWebSocket(`${urls.site}/ws`);
      if (!("ws" in dialed)) throw new Error(`refused: ${dialed.status} ${dialed.body}`);
      expect(dialed.headers["x-skiff-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
      // What a message costs through gateway, worker relay and runner, next to a plain ws echo on loopback.
      await echoLatency(dialed.ws, 50);
      const through = await echoLatency(dialed.ws, 500);
      dialed.ws.close();
      const loopback = new WebSocketServer({ port: 0, host: "127.0.0.1" });
      loopback.on("connection", (ws) => ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary })));
      await new Promise((resolve) => loopback.once("listening", resolve));
      const direct = await openWebSocket(`http://127.0.0.1:${(loopback.address() as AddressInfo).port}/`);
      await echoLatency(direct, 50);
      const baseline = await echoLatency(direct, 500);
      direct.close();
      loopback.close();
      console.log(
        `${runtime.name}: WebSocket echo round trip through skiff p50 ${through.p50} ms p99 ${through.p99} ms; plain ws on loopback p50 ${baseline.p50} ms p99 ${baseline.p99} ms`,
      );
      // The same route without an upgrade gets the handler's answer.
      const plain = await fetch(`${urls.site}/ws`);
      expect(plain.status).toBe(426);
      // An unknown URL refuses the handshake as it refuses a request, and an endpoint takes none.
      for (const url of [`${stack.url}/w/main/e2e-web/nope/ws`, `${stack.url}/w/main/no-such-app/site/ws`]) {
        const refused = await dialWebSocket(url);
        expect(refused, url).toMatchObject({ status: 404 });
      }
      const endpoint = await dialWebSocket(urls.gen!);
      expect(endpoint).toMatchObject({ status: 400 });
      expect((endpoint as { body: string }).body).toContain("upgradeWebSocket");
    }, 240_000);

    it("holds a container's one slot while a WebSocket is open (maxInputs 1), and frees it when it closes", async () => {
      await exerciseEcho(urls.solo!);
      const first = await openWebSocket(urls.solo!);
      first.send("who");
      const container = (await nextMessage(first)).data.toString();
      expect(container).toMatch(/^ct-/);
      // maxContainers 1, maxInputs 1: a second socket waits for the first one's slot.
      let secondOpen = false;
      const second = openWebSocket(urls.solo!).then((ws) => {
        secondOpen = true;
        return ws;
      });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(secondOpen).toBe(false);
      const started = Date.now();
      first.close(1000);
      const next = await second;
      expect(Date.now() - started).toBeLessThan(5000);
      next.send("who");
      expect((await nextMessage(next)).data.toString()).toBe(container);
      // A client that drops the connection without a close frame frees the slot too.
      next.terminate();
      const third = await openWebSocket(urls.solo!);
      third.close(1000);
      await closeOf(third);
    }, 240_000);

    it("answers 500 with a request id when a handler throws, and keeps the stack out of the answer", async () => {
      const response = await fetch(urls.broken!);
      expect(response.status).toBe(500);
      const text = await response.text();
      const { error } = JSON.parse(text) as { error: { code: string; requestId: string } };
      expect(error.code).toBe("INTERNAL");
      expect(error.requestId).toMatch(/\S/);
      expect(response.headers.get("x-skiff-request-id")).toBe(error.requestId);
      expect(text).not.toMatch(/web\.ts|at async|\n\s+at /);
      // The next request is answered the same way: the function still serves.
      expect((await fetch(urls.broken!)).status).toBe(500);
    }, 240_000);

    it("scales from zero: a request with no container running is answered, and the container goes after its scaledown window", async () => {
      await waitFor("hello has no container", async () => (await containers("hello")).length === 0);
      const response = await fetch(`${urls.hello}?name=zero`);
      expect(response.status).toBe(200);
      expect(await response.text()).toBe("Hello, zero!");
      await waitFor("hello scales back to zero", async () => !(await cliListsContainerOf(stack, "hello")));
    }, 240_000);

    it("serves a file until Ctrl-C with `skiff serve`, and refuses a file with no web function", async () => {
      const refused = await stack.run(["serve", "e2e/fixtures/calls.ts", NO_TYPECHECK]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("skiff serve needs a web function: app.web, app.endpoint or app.webServer");

      const served = startServe(stack, SERVE_FIXTURE, [NO_TYPECHECK]);
      try {
        const url = await served.url("ping");
        expect(url).toBe(`${stack.url}/w/main/e2e-web-serve/ping`);
        const response = await fetch(`${url}/a/b?c=d`);
        expect(response.status).toBe(200);
        expect(await response.text()).toBe("pong /a/b");
        served.child.kill("SIGINT");
        expect(await served.exited).toBe(0);
        await waitFor("the stopped app's URL answers 404", async () => (await fetch(url)).status === 404, 15_000);
      } finally {
        served.child.kill("SIGKILL");
      }
    }, 400_000);

    it("refuses to deploy a second app with a label another app of the environment has (409)", async () => {
      const clash = fixtureVariant(FIXTURE, "web-clash", (code) =>
        code.replace('new App("e2e-web")', 'new App("e2e-web-clash")'),
      );
      const refused = await stack.run(["deploy", clash, NO_TYPECHECK], { timeoutMs: 300_000 });
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/\bgen\b/);
      expect(refused.stderr).toMatch(/\be2e-web\b(?!-)/);
      // The app that holds the label still answers at its URL.
      expect(await fetch(`${urls.hello}?name=still`).then((r) => r.text())).toBe("Hello, still!");
    }, 400_000);
  });
}
