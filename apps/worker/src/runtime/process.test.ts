import { describe, expect, it } from "vitest";
import { toHostPath } from "./process.js";

describe("toHostPath", () => {
  const mounts = [
    { source: "/h/skiff", target: "/.skiff", readonly: true },
    { source: "/h/node", target: "/.skiff/node", readonly: true },
  ];
  it("maps the longest matching mount target and leaves other paths alone", () => {
    expect(toHostPath("/.skiff/node/bin/node", mounts)).toBe("/h/node/bin/node");
    expect(toHostPath("/.skiff/io/sock", mounts)).toBe("/h/skiff/io/sock");
    expect(toHostPath("/.skiffy", mounts)).toBe("/.skiffy");
    expect(toHostPath("-e", mounts)).toBe("-e");
  });
});
