import type { AppManifest } from "@skiff/protocol";
import type { Client } from "skiff/plumbing";
import { describe, expect, it } from "vitest";
import { formatWebUrls, hasWebFunction, labeledUrls, webUrlsOf } from "./web-urls.js";

/** A manifest's functions as far as URLs go: names, and a label for the web ones. */
const manifestOf = (functions: { name: string; label?: string }[]) =>
  ({
    name: "hello",
    functions: functions.map(({ name, label }) => ({
      name,
      ...(label ? { web: { kind: "fetch", label, docs: false, requiresProxyAuth: false } } : {}),
    })),
  }) as unknown as AppManifest;

/** A client whose whoami says the token acts in `workspace`, on a server with `webBaseUrl` if given. */
const clientIn = (workspace: string, webBaseUrl: string | null = null) =>
  ({
    call: async () => ({ tokenId: "tk-1", kind: "user", admin: false, workspace: { name: workspace }, webBaseUrl }),
  }) as unknown as Client;

describe("webUrlsOf", () => {
  it("gives each web function its URL, in the token's workspace", async () => {
    const manifest = manifestOf([
      { name: "square" },
      { name: "generate", label: "gen" },
      { name: "site", label: "site" },
    ]);
    expect(hasWebFunction(manifest)).toBe(true);
    const where = { serverUrl: "http://127.0.0.1:7420", env: "dev" };
    expect(await webUrlsOf(manifest, { ...where, client: clientIn("local") })).toEqual([
      { label: "gen", url: "http://127.0.0.1:7420/w/dev/hello/gen" },
      { label: "site", url: "http://127.0.0.1:7420/w/dev/hello/site" },
    ]);
    expect((await webUrlsOf(manifest, { ...where, client: clientIn("team") }))[0]?.url).toBe(
      "http://127.0.0.1:7420/w/dev.team/hello/gen",
    );
  });

  it("gives host URLs on a server with host routing, but for names a host name cannot carry", async () => {
    const manifest = manifestOf([{ name: "generate", label: "gen" }]);
    const where = { serverUrl: "http://127.0.0.1:7420", env: "dev" };
    expect(await webUrlsOf(manifest, { ...where, client: clientIn("local", "https://apps.example.com") })).toEqual([
      { label: "gen", url: "https://gen-hello.dev.apps.example.com" },
    ]);
    const underscored = { ...manifestOf([{ name: "generate", label: "gen" }]), name: "my_app" } as AppManifest;
    expect(await webUrlsOf(underscored, { ...where, client: clientIn("local", "https://apps.example.com") })).toEqual([
      { label: "gen", url: "http://127.0.0.1:7420/w/dev/my_app/gen" },
    ]);
  });

  it("asks the server nothing for an app with no web function", async () => {
    const manifest = manifestOf([{ name: "square" }]);
    expect(hasWebFunction(manifest)).toBe(false);
    const client = { call: () => Promise.reject(new Error("called")) } as unknown as Client;
    expect(await webUrlsOf(manifest, { client, serverUrl: "http://x", env: "main" })).toEqual([]);
  });
});

describe("labeledUrls", () => {
  it("gives the URLs of several apps' labels, app by app, as `skiff app list` shows them", () => {
    const apps = [
      { app: "one", labels: ["a", "b"] },
      { app: "two", labels: [] },
    ];
    expect(labeledUrls({ workspaceName: "team" }, apps, { serverUrl: "http://h:1", env: "main" })).toEqual([
      [
        { label: "a", url: "http://h:1/w/main.team/one/a" },
        { label: "b", url: "http://h:1/w/main.team/one/b" },
      ],
      [],
    ]);
  });
});

describe("formatWebUrls", () => {
  it("prints one line per label with the URLs lined up", () => {
    expect(
      formatWebUrls([
        { label: "gen", url: "http://127.0.0.1:7420/w/main/hello/gen" },
        { label: "site-2", url: "http://127.0.0.1:7420/w/main/hello/site-2" },
      ]),
    ).toEqual([
      "  gen     http://127.0.0.1:7420/w/main/hello/gen",
      "  site-2  http://127.0.0.1:7420/w/main/hello/site-2",
    ]);
  });
});
