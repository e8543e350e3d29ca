import { existsSync } from "node:fs";
import { mkdir, mkdtemp, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ProcessRuntime } from "../runtime/process.js";
import { ImageBuilder } from "./builder.js";

const DAY = 24 * 3_600_000;

/** A cached layer as a build leaves it: `fs`, `size` and a `done` whose time is the last use. */
async function layer(cacheDir: string, key: string, bytes: number, usedAt: number): Promise<string> {
  const dir = join(cacheDir, "layers", key);
  await mkdir(join(dir, "fs"), { recursive: true });
  await writeFile(join(dir, "size"), String(bytes));
  await writeFile(join(dir, "done"), "");
  await utimes(join(dir, "done"), new Date(usedAt), new Date(usedAt));
  return dir;
}

describe("the image cache", () => {
  it("removes layers unused past their age, then the least recently used over the budget, never one in use", async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), "skiff-cache-"));
    const builder = new ImageBuilder({
      runtime: new ProcessRuntime(),
      cacheDir,
      npmDir: undefined,
      caBundle: undefined,
      fetchBlob: async () => new Uint8Array(),
    });
    const now = Date.now();
    const old = await layer(cacheDir, "a".repeat(64), 10, now - 10 * DAY);
    const lru = await layer(cacheDir, "b".repeat(64), 600, now - 2 * DAY);
    const recent = await layer(cacheDir, "c".repeat(64), 600, now - DAY);
    const scratch = join(cacheDir, "layers", `${"d".repeat(64)}.tmp-1234`);
    await mkdir(scratch, { recursive: true });
    await utimes(scratch, new Date(now - 2 * DAY), new Date(now - 2 * DAY));

    // The oldest layer is in use by a container: it stays whatever its age.
    const inUse = await builder.ensure(
      {
        base: "debian-bookworm",
        nodeMajor: 20,
        layers: [{ key: "a".repeat(64), step: { kind: "env", vars: {} } }],
        mounts: [],
      },
      { rootfs: "/", nodeDir: "/" },
      () => {},
    );
    expect((await builder.collect({ maxBytes: 1000, maxAgeMs: 7 * DAY, minIdleMs: 3_600_000 }, now)).removed).toBe(2);
    expect([existsSync(old), existsSync(lru), existsSync(recent), existsSync(scratch)]).toEqual([
      true,
      false,
      true,
      false,
    ]);

    inUse.release();
    await utimes(join(old, "done"), new Date(now - 10 * DAY), new Date(now - 10 * DAY));
    expect((await builder.collect({ maxBytes: 1000, maxAgeMs: 7 * DAY, minIdleMs: 3_600_000 }, now)).removed).toBe(1);
    expect(existsSync(old)).toBe(false);
  });
});
