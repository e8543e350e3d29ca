import { describe, expect, it } from "vitest";
import { hostRoutable, parseWebHost, webEnvSegment, webHost, webHostUrl, webPath, webUrl } from "./web-url.js";

describe("web URLs", () => {
  it("name only the environment in the workspace named local", () => {
    const address = { workspaceName: "local", env: "main", app: "hello", label: "gen" };
    expect(webPath(address)).toBe("/w/main/hello/gen");
    expect(webUrl("http://127.0.0.1:7420", address)).toBe("http://127.0.0.1:7420/w/main/hello/gen");
  });

  it("name the environment and the workspace elsewhere", () => {
    expect(webEnvSegment("dev", "team")).toBe("dev.team");
    expect(webUrl("https://skiff.example/", { workspaceName: "team", env: "dev", app: "shop", label: "api" })).toBe(
      "https://skiff.example/w/dev.team/shop/api",
    );
  });

  it("keep a server URL's path prefix", () => {
    expect(webUrl("https://host/skiff", { workspaceName: "local", env: "main", app: "a", label: "b" })).toBe(
      "https://host/skiff/w/main/a/b",
    );
  });
});

describe("host routing", () => {
  const address = { workspaceName: "local", env: "main", app: "hello", label: "gen" };

  it("names LABEL-APP.ENV under the base domain, with the base URL's scheme and port", () => {
    expect(webHost(address, "apps.example.com")).toBe("gen-hello.main.apps.example.com");
    expect(webHostUrl("https://apps.example.com", { ...address, workspaceName: "team" })).toBe(
      "https://gen-hello.main.team.apps.example.com",
    );
    expect(webHostUrl("http://apps.localhost:7420", { ...address, app: "shop" })).toBe(
      "http://gen-shop.main.apps.localhost:7420",
    );
  });

  it("parses a Host header back, in any case and with any port", () => {
    expect(parseWebHost("gen-hello.main.apps.example.com", "apps.example.com")).toEqual({
      workspaceName: "local",
      env: "main",
      labelApp: "gen-hello",
    });
    expect(parseWebHost("GEN-my-app.Dev.Team.apps.example.com:8443", "apps.example.com")).toEqual({
      workspaceName: "team",
      env: "dev",
      labelApp: "gen-my-app",
    });
  });

  it("is not a web host: the base domain itself, another domain, too many or too few parts, no '-'", () => {
    for (const host of [
      "apps.example.com",
      "main.apps.example.com",
      "gen-hello.main.example.org",
      "gen-hello.apps.example.com",
      "gen.main.apps.example.com",
      "a-b.c.d.e.apps.example.com",
      "evilapps.example.com",
      undefined,
    ]) {
      expect(parseWebHost(host, "apps.example.com"), String(host)).toBeUndefined();
    }
  });

  it("routes only names that fit in a host name", () => {
    expect(hostRoutable(address)).toBe(true);
    expect(hostRoutable({ ...address, app: "my_app" })).toBe(false);
    expect(hostRoutable({ ...address, app: "Shop" })).toBe(false);
    expect(hostRoutable({ ...address, workspaceName: "Acme" })).toBe(false);
    expect(hostRoutable({ ...address, app: "a".repeat(60) })).toBe(false);
  });
});
