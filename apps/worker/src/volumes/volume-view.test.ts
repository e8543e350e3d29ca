import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryVolumeSource } from "./memory-volume-source.js";
import type { VolumeChange, VolumeVersion } from "./volume-source.js";
import { collect } from "./volume-test-kit.js";
import { VolumeView } from "./volume-view.js";
import { parseRange } from "./webdav-server.js";

let scratch = "";
beforeEach(async () => {
  scratch = await mkdtemp(join(tmpdir(), "skiff-view-"));
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const open = async (source: MemoryVolumeSource, readOnly = false) => {
  const view = new VolumeView({ source, scratchDir: join(scratch, "pending"), readOnly });
  await view.open();
  return view;
};
const names = async (view: VolumeView, dir: string) => ((await view.list(dir)) ?? []).map((e) => e.path).sort();
const ops = (changes: VolumeChange[]) => changes.map(({ op, path }) => `${op} ${path}`);

describe("VolumeView", () => {
  it("shows the base with its own changes on top, and commits them as one change list", async () => {
    const source = new MemoryVolumeSource({ "/a": "1", "/d/x": "x", "/d/y": "y" });
    const view = await open(source);
    await view.write("/b", Readable.from(["new"]));
    await view.write("/a", Readable.from(["one"]));
    await view.remove("/d/x");
    expect(await names(view, "/")).toEqual(["/a", "/b", "/d"]);
    expect(await names(view, "/d")).toEqual(["/d/y"]);
    expect(await collect(await view.read("/a"))).toBe("one");
    expect(await collect(await view.read("/a", { offset: 1, length: 1 }))).toBe("n");
    expect(await source.stat(view.base, "/b")).toBeUndefined();

    const { changes, version } = await view.commit();
    expect(ops(changes)).toEqual(["delete /d/x", "put /a", "put /b"]);
    expect(view.base).toBe(version);
    expect(view.pendingPaths).toEqual([]);
    expect(await collect(await source.read(version, "/b"))).toBe("new");
  });

  it("hides the old children of a directory deleted and made again", async () => {
    const source = new MemoryVolumeSource({ "/d/old": "o" });
    const view = await open(source);
    await view.remove("/d");
    await view.mkdir("/d");
    await view.write("/d/new", Readable.from(["n"]));
    expect(await names(view, "/d")).toEqual(["/d/new"]);
    const { changes, version } = await view.commit();
    expect(ops(changes)).toEqual(["delete /d", "mkdir /d", "put /d/new"]);
    expect((await source.list(version, "/d"))?.map((e) => e.path)).toEqual(["/d/new"]);
  });

  it("moves a committed directory as references to its files' bytes", async () => {
    const source = new MemoryVolumeSource({ "/d/a": "a", "/d/sub/b": "b" });
    const view = await open(source);
    const base = view.base;
    expect(await view.move("/d", "/e", false)).toBe("created");
    expect(await names(view, "/")).toEqual(["/e"]);
    expect(await collect(await view.read("/e/sub/b"))).toBe("b");
    const { changes } = await view.commit();
    expect(ops(changes)).toEqual(["delete /d", "mkdir /e", "mkdir /e/sub", "put /e/a", "put /e/sub/b"]);
    expect(changes.find((change) => change.path === "/e/sub/b")).toMatchObject({
      content: { copyOf: { version: base, path: "/d/sub/b" } },
    });
  });

  it("refuses what a file system would", async () => {
    const source = new MemoryVolumeSource({ "/a": "1", "/d/x": "x" });
    const view = await open(source);
    await expect(view.write("/missing/f", Readable.from(["x"]))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(view.write("/a/f", Readable.from(["x"]))).rejects.toMatchObject({ code: "ENOTDIR" });
    await expect(view.mkdir("/d")).rejects.toMatchObject({ code: "EEXIST" });
    await expect(view.move("/a", "/d/x", false)).rejects.toMatchObject({ code: "EEXIST" });
    await expect(view.move("/d", "/d/inner", true)).rejects.toMatchObject({ code: "EINVAL" });
    await expect(view.remove("/nope")).rejects.toMatchObject({ code: "ENOENT" });
    const readOnly = await open(source, true);
    await expect(readOnly.write("/b", Readable.from(["x"]))).rejects.toMatchObject({ code: "EROFS" });
    await expect(readOnly.remove("/a")).rejects.toMatchObject({ code: "EROFS" });
  });

  it("keeps changes made while a commit runs for the next one, and all of them when a commit fails", async () => {
    const source = new MemoryVolumeSource({});
    let release: () => void = () => {};
    let fail = false;
    const commit = source.commit.bind(source);
    source.commit = async (base: VolumeVersion, changes: VolumeChange[]) => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      if (fail) throw new Error("store unavailable");
      return commit(base, changes);
    };
    const view = await open(source);
    await view.write("/first", Readable.from(["1"]));
    const committing = view.commit();
    const writing = view.write("/second", Readable.from(["2"]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    expect(ops((await committing).changes)).toEqual(["put /first"]);
    await writing;
    expect(view.pendingPaths).toEqual(["/second"]);

    fail = true;
    const failing = view.commit();
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await expect(failing).rejects.toThrow("store unavailable");
    expect(view.pendingPaths).toEqual(["/second"]);
    expect(await collect(await view.read("/second"))).toBe("2");
  });

  it("shows a changed file of the same size and second a second later, so caches see the change", async () => {
    const mtimeMs = 1_700_000_000_500;
    const source = new MemoryVolumeSource({ "/a": "hello" }, mtimeMs);
    const reader = await open(source);
    const writer = await open(source);
    expect((await reader.stat("/a"))?.mtimeMs).toBe(mtimeMs);
    await writer.write("/a", Readable.from(["HELLO"]), mtimeMs);
    await writer.commit();
    await reader.reload();
    expect((await reader.stat("/a"))?.mtimeMs).toBe(1_700_000_001_000);
    expect((await reader.stat("/a"))?.mtimeMs).toBe(1_700_000_001_000);
  });
});

describe("parseRange", () => {
  it("reads one bytes= range, cut to the file", () => {
    expect(parseRange("bytes=0-4", 10)).toEqual({ offset: 0, length: 5 });
    expect(parseRange("bytes=5-", 10)).toEqual({ offset: 5, length: 5 });
    expect(parseRange("bytes=8-100", 10)).toEqual({ offset: 8, length: 2 });
    expect(parseRange("bytes=-3", 10)).toEqual({ offset: 7, length: 3 });
    expect(parseRange("bytes=10-", 10)).toBeNull();
    expect(parseRange("bytes=0-1,4-5", 10)).toBeUndefined();
  });
});
