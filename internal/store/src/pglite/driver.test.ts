import { fsyncSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Db } from "../db.js";
import { openPglite } from "./driver.js";

describe("PGlite on disk", () => {
  let db: Db | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    await db?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("syncs the WAL to disk before a commit returns", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    const synced: string[] = [];
    db = await openPglite(dir, {
      fsync: (fd) => {
        synced.push(readlinkSync(`/proc/self/fd/${fd}`));
        fsyncSync(fd);
      },
    });
    await db.exec("CREATE TABLE t (v int)");
    synced.length = 0;
    await db.query("INSERT INTO t VALUES (1)");
    expect(synced.some((path) => path.startsWith(join(dir!, "pg_wal")))).toBe(true);
    expect(await db.query("SHOW fsync")).toEqual([{ fsync: "on" }]);
  });

  it("syncs what initdb wrote into a new data directory", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    const synced: string[] = [];
    db = await openPglite(dir, { fsync: (fd) => synced.push(readlinkSync(`/proc/self/fd/${fd}`)) });
    expect(synced).toEqual(expect.arrayContaining([join(dir, "PG_VERSION"), join(dir, "base"), dir]));
  });

  it("syncs the data files at a checkpoint", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    const synced: string[] = [];
    db = await openPglite(dir, { fsync: (fd) => synced.push(readlinkSync(`/proc/self/fd/${fd}`)) });
    await db.exec("CREATE TABLE t (v int)");
    await db.query("INSERT INTO t VALUES (1)");
    synced.length = 0;
    await db.exec("CHECKPOINT");
    expect(synced.some((path) => path.startsWith(join(dir!, "base")))).toBe(true);
    expect(synced).toContain(join(dir!, "global", "pg_control"));
  });
});
