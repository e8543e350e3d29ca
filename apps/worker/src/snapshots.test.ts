import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ContainerSpec } from "./runtime/types.js";
import { SnapshotStore } from "./snapshots.js";

const spec = (id: string, overrides: Partial<ContainerSpec> = {}): ContainerSpec => ({
  id,
  rootfs: "/rootfs",
  layers: ["/layers/a"],
  command: ["node", "runner.mjs"],
  env: { SKIFF_CONTAINER_ID: id, SECRET: "s" },
  cwd: "/",
  mounts: [
    { source: "/runner", target: "/.skiff/runner", readonly: true },
    { source: `/state/containers/${id}`, target: "/.skiff/sock", readonly: false },
  ],
  cpu: 1,
  memoryMiB: 512,
  network: "private",
  ...overrides,
});

describe("SnapshotStore", () => {
  let dir = "";
  let store: SnapshotStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-snapshots-"));
    store = new SnapshotStore(dir, async () => "runsc 1\nflags", 2);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keys by what a restore depends on, not by the container's own id and directories", async () => {
    const key = (s: ContainerSpec) => store.keyOf(s, { bundle: "b1" }, [`/state/containers/${s.id}`]);
    expect(await key(spec("ct-1"))).toBe(await key(spec("ct-2")));
    expect(await key(spec("ct-1"))).not.toBe(await key(spec("ct-1", { memoryMiB: 1024 })));
    expect(await key(spec("ct-1"))).not.toBe(await key(spec("ct-1", { env: { SECRET: "changed" } })));
    expect(await store.keyOf(spec("ct-1"), { bundle: "b1" }, [])).not.toBe(
      await store.keyOf(spec("ct-1"), { bundle: "b2" }, []),
    );
  });

  it("is taken once while many wait, then restored by all", async () => {
    const first = await store.lookup("k");
    expect(first.state).toBe("take");
    const waiting = Promise.all([store.lookup("k"), store.lookup("k")]);
    if (first.state !== "take") throw new Error("unreachable");
    await writeFile(join(first.taking.dir, "checkpoint.img"), "image");
    const ready = await first.taking.done();
    for (const found of await waiting) expect(found).toEqual({ state: "ready", dir: ready });
    expect(await store.lookup("k")).toEqual({ state: "ready", dir: ready });
    await store.drop("k");
    expect((await store.lookup("k")).state).toBe("take");
  });

  it("remembers a snapshot that cannot be taken, and lets one that failed for a passing reason be tried again", async () => {
    const a = await store.lookup("a");
    if (a.state !== "take") throw new Error("expected take");
    const waiter = store.lookup("a");
    await a.taking.failed("open host socket", true);
    expect(await waiter).toEqual({ state: "failed", reason: "open host socket" });
    expect(await store.lookup("a")).toEqual({ state: "failed", reason: "open host socket" });
    const b = await store.lookup("b");
    if (b.state !== "take") throw new Error("expected take");
    await b.taking.failed("a snap hook threw", false);
    expect((await store.lookup("b")).state).toBe("take");
    expect(existsSync(b.taking.dir)).toBe(true);
  });

  it("keeps the most recently used snapshots, and clears half-written ones at start", async () => {
    for (const key of ["one", "two", "three"]) {
      const found = await store.lookup(key);
      if (found.state !== "take") throw new Error("expected take");
      await writeFile(join(found.taking.dir, "checkpoint.img"), key);
      await found.taking.done();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect((await readdir(dir)).sort()).toEqual(["three", "two"]);
    await store.lookup("left");
    await store.cleanup();
    expect((await readdir(dir)).sort()).toEqual(["three", "two"]);
  });
});
