import { describe, expect, it } from "vitest";
import { webEnvSegment, webPath, webUrl } from "./web-url.js";

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
