import { describe, expect, it } from "vitest";
import { z } from "zod";
import { App, collectApp, manifestOf } from "../app.js";
import { SkiffError } from "../errors.js";
import { streamResponse } from "./stream-response.js";
import type { WebOptions } from "./web-options.js";

const fetch = () => new Response("ok");

describe("web functions in the manifest", () => {
  it("gives app.web, app.endpoint and app.webServer a WebSpec with their options", () => {
    const app = new App("site");
    const my_site = app.web({ requiresProxyAuth: true, minContainers: 1, concurrent: { maxInputs: 100 } }, fetch);
    const generate = app.endpoint({ docs: true, label: "gen", body: z.object({ p: z.string() }) }, () => 1);
    const Hello = app.endpoint({ query: z.object({ n: z.string() }) }, () => 1);
    const ui = app.webServer({ port: 7860, startupTimeout: "60s" }, () => {});
    const manifest = manifestOf(collectApp({ app, my_site, generate, Hello, ui }, "site.ts"), 20);
    const byName = Object.fromEntries(manifest.functions.map((fn) => [fn.name, fn]));
    expect(byName.my_site).toMatchObject({
      minContainers: 1,
      maxInputs: 100,
      web: { kind: "fetch", label: "my-site", docs: false, requiresProxyAuth: true },
    });
    expect(byName.generate?.web).toEqual({
      kind: "endpoint",
      label: "gen",
      method: "POST",
      docs: true,
      requiresProxyAuth: false,
    });
    expect(byName.Hello?.web).toMatchObject({ kind: "endpoint", label: "hello", method: "GET" });
    expect(byName.ui).toMatchObject({ startupTimeoutMs: 60_000, web: { kind: "server", label: "ui", port: 7860 } });
  });

  it("records redirectAfter: a duration, false for never, absent for the default; under 1 s is refused", () => {
    const app = new App("site");
    const slow = app.web({ redirectAfter: "10m" }, fetch);
    const never = app.endpoint({ redirectAfter: false }, () => 1);
    const plain = app.web(fetch);
    const manifest = manifestOf(collectApp({ app, slow, never, plain }, "site.ts"), 20);
    const byName = Object.fromEntries(manifest.functions.map((fn) => [fn.name, fn]));
    expect(byName.slow?.web?.redirectAfterMs).toBe(600_000);
    expect(byName.never?.web?.redirectAfterMs).toBeNull();
    expect(byName.plain?.web).not.toHaveProperty("redirectAfterMs");
    expect(() => app.web({ redirectAfter: "500ms" }, fetch)).toThrow(/redirectAfter must be from 1s to 24h/);
    expect(() => app.web({ redirectAfter: "30d" }, fetch)).toThrow(/redirectAfter must be from 1s to 24h/);
    expect(() => app.web({ redirectAfter: "soon" } as unknown as WebOptions, fetch)).toThrow(/not a duration/);
  });

  it("says to request the URL when a web function is called", async () => {
    const app = new App("site");
    const site = app.web(fetch);
    collectApp({ app, site }, "site.ts");
    expect(() => site.remote()).toThrow(
      /web function "site" of app "site" answers HTTP requests, not calls: request its URL/,
    );
    expect(() => site.map()).toThrow(/instead of \.map\(\)/);
    expect(await (await site.local(new Request("http://h/"))).text()).toBe("ok");
  });
});

describe("web function refusals", () => {
  const app = new App("site");
  it("refuses function options that make no sense for HTTP, saying why", () => {
    expect(() => app.web({ batched: { maxBatchSize: 2, wait: 1 } } as WebOptions, fetch)).toThrow(
      /^app\.web\(options\): option "batched" is not for web functions: requests are not gathered into batches$/,
    );
    expect(() => app.endpoint({ retries: 2 } as WebOptions, () => 1)).toThrow(
      /option "retries" is not for web functions/,
    );
    expect(() => app.webServer({ port: 1, schedule: {} } as never, () => {})).toThrow(/option "schedule"/);
  });

  it("refuses options of another kind of web function, and unknown ones", () => {
    expect(() => app.web({ port: 80 } as WebOptions, fetch)).toThrow(/unknown option "port"/);
    expect(() => app.webServer({ port: 80, docs: true } as never, () => {})).toThrow(/unknown option "docs"/);
    expect(() => app.web({ lable: "x" } as WebOptions, fetch)).toThrow(
      /unknown option "lable" \(did you mean "label"\?\)/,
    );
  });

  it("refuses bad labels, methods, ports and handlers", () => {
    expect(() => app.web({ label: "My_Site" }, fetch)).toThrow(/label "My_Site" cannot be part of a URL/);
    expect(() => app.endpoint({ method: "GET", body: z.object({}) }, () => 1)).toThrow(
      /a GET request has no body: use `query`, or method POST/,
    );
    expect(() => app.endpoint({ method: "TRACE" as "GET" }, () => 1)).toThrow(/method must be one of GET, POST/);
    expect(() => app.webServer({ port: 70_000 }, () => {})).toThrow(/port must be a whole number from 1 to 65535/);
    expect(() => app.web({}, undefined as never)).toThrow(/needs a fetch handler/);
  });

  it("refuses an app.web handler's async iterable, saying to wrap it with streamResponse; wrapped, it streams", async () => {
    async function* words() {
      yield "a";
      yield "b";
    }
    const bare = app.web({}, words as never);
    const error = await bare.local(new Request("http://x/")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SkiffError);
    expect(error).toMatchObject({ code: "BAD_REQUEST" });
    expect((error as Error).message).toMatch(
      /^an app\.web handler returns a Response, and this one returned an async iterable .*: return streamResponse\(iterable, request\) \(import \{ streamResponse \} from "skiff"\)/,
    );
    const wrapped = app.web({}, (request) => streamResponse(words(), request));
    expect(await (await wrapped.local(new Request("http://x/"))).text()).toBe('data: "a"\n\ndata: "b"\n\n');
    // Anything else is the handler's own business, as before (the runner refuses what is not a Response).
    expect(await app.web({}, () => "text" as never).local(new Request("http://x/"))).toBe("text");
  });

  it("refuses two web functions of an app at one label", () => {
    const other = new App("x");
    const api = other.web(fetch);
    const second = other.endpoint({ label: "api" }, () => 1);
    expect(() => manifestOf(collectApp({ app: other, api, second }, "x.ts"), 20)).toThrow(
      /^functions "api" and "second" both answer at the label "api": give one of them another `label`$/,
    );
  });

  it("refuses at manifest time a default label that URLs cannot carry", () => {
    const other = new App("x");
    const ünïcode = other.web(fetch);
    expect(() => manifestOf(collectApp({ app: other, ünïcode }, "x.ts"), 20)).toThrow(
      /function "ünïcode": label "ünïcode" cannot be part of a URL: .*, or give it a `label`/,
    );
  });
});
