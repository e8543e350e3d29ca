import { describe, expect, it } from "vitest";
import { imageLine } from "./image.js";

const key = "a".repeat(64);

describe("imageLine", () => {
  it("says how many layers an image builds", () => {
    const image = {
      base: "debian-bookworm" as const,
      nodeMajor: 20,
      layers: [{ key, step: { kind: "workdir" as const, path: "/app" } }],
      mounts: [],
    };
    expect(imageLine(image, ["resize"])).toBe("building the image of resize (1 layer)");
  });

  it("says that functions on the base image have nothing to build, rather than '(0 layers)'", () => {
    const image = { base: "debian-bookworm" as const, nodeMajor: 20, layers: [], mounts: [] };
    expect(imageLine(image, ["gen", "web"])).toBe(
      "gen, web run on the base image (Debian bookworm, Node 20): no layers to build",
    );
    const pulled = { ...image, base: { registry: "docker.io/library/node:20", insecure: false } };
    expect(imageLine(pulled, ["gen"])).toBe(
      "gen runs on the base image (docker.io/library/node:20, Node 20): no layers to build",
    );
  });
});
