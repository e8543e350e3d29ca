import { describe, expect, it } from "vitest";
import { webEnvSegment, webUrl } from "./web-url.js";

describe("webUrl", () => {
  it("names only the environment in the workspace named local", () => {
    expect(
      webUrl({ serverUrl: "http://127.0.0.1:7420", env: "main", workspace: "local", app: "hello", label: "gen" }),
    ).toBe("http://127.0.0.1:7420/w/main/hello/gen");
  });

  it("names the environment and the workspace elsewhere", () => {
    expect(webEnvSegment("dev", "team")).toBe("dev.team");
    expect(
      webUrl({ serverUrl: "https://skiff.example/", env: "dev", workspace: "team", app: "shop", label: "api" }),
    ).toBe("https://skiff.example/w/dev.team/shop/api");
  });

  it("keeps a server URL's path prefix", () => {
    expect(webUrl({ serverUrl: "https://host/skiff", env: "main", workspace: "local", app: "a", label: "b" })).toBe(
      "https://host/skiff/w/main/a/b",
    );
  });
});
