import { describe, expect, it } from "vitest";
import { mountsProblem } from "./mount-rules.js";

const volume = (path: string, name = "models") => ({ kind: "volume" as const, path, name });
const bucket = (path: string) => ({ kind: "bucket" as const, path, bucket: "datasets" });

describe("mount paths", () => {
  it("takes plain absolute paths that do not overlap", () => {
    expect(mountsProblem([volume("/models"), bucket("/data"), volume("/cache/hf", "hf")])).toBeUndefined();
  });

  it("refuses paths that are not plain, and the container's own file systems", () => {
    expect(mountsProblem([volume("models")])).toMatch(/must be absolute and plain/);
    expect(mountsProblem([volume("/models/")])).toMatch(/must be absolute and plain/);
    expect(mountsProblem([volume("/a/../proc")])).toMatch(/must be absolute and plain/);
    expect(mountsProblem([volume("/")])).toMatch(/cannot mount over \/ /);
    expect(mountsProblem([volume("/proc")])).toMatch(/cannot mount over \/proc/);
    expect(mountsProblem([bucket("/dev/shm")])).toMatch(/cannot mount over \/dev/);
    expect(mountsProblem([volume("/.skiff/runner")])).toMatch(
      /cannot mount over \/\.skiff \(the container's own Skiff files\)/,
    );
  });

  it("refuses two mounts at one path, one inside another, over the image's files, and one volume twice", () => {
    expect(mountsProblem([volume("/data"), bucket("/data")])).toMatch(/is at the same path as volume "models"/);
    expect(mountsProblem([volume("/data"), bucket("/data/raw")])).toMatch(/overlaps volume "models" at "\/data"/);
    expect(mountsProblem([volume("/srv/app")], ["/srv"])).toMatch(/overlaps one of the image's local files/);
    expect(mountsProblem([volume("/a"), volume("/b")])).toMatch(/volume "models" is mounted twice/);
  });
});
