import {
  existsSync,
  fsyncSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
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
    db = undefined;
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

  it("makes a new store whole, synced, then moved into place, clearing what a killed start left", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    const data = join(dir, "data");
    mkdirSync(`${data}.new-2147483646`); // no such process
    writeFileSync(join(`${data}.new-2147483646`, "PG_VERSION"), "half made");
    const synced: string[] = [];
    db = await openPglite(data, { fsync: (fd) => synced.push(readlinkSync(`/proc/self/fd/${fd}`)) });
    const staging = `${data}.new-${process.pid}`;
    expect(synced).toEqual(expect.arrayContaining([join(staging, "PG_VERSION"), join(staging, "base"), dir]));
    // The staging directories are gone; beside the store only its lock (held while it is open).
    expect(readdirSync(dir).sort()).toEqual(["data", "data.lock"]);
    expect(await db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("refuses a directory that holds files but no store, and says what to do", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    writeFileSync(join(dir, "notes.txt"), "mine");
    await expect(openPglite(dir)).rejects.toThrow(/holds files but no database .*move it away/);
    expect(readdirSync(dir)).toEqual(["notes.txt"]);
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

  it("opens a data directory in one place at a time, and takes over a lock its process left", async () => {
    dir = mkdtempSync(join(tmpdir(), "skiff-pglite-"));
    const data = join(dir, "data");
    db = await openPglite(data);
    await expect(openPglite(data)).rejects.toThrow(/open in this process already: stop that Skiff server first/);
    await db.close();
    db = undefined;
    expect(existsSync(`${data}.lock`)).toBe(false);
    // Another live process holds it (pid 1 is always there); then a process that is gone.
    writeFileSync(`${data}.lock`, "1");
    await expect(openPglite(data)).rejects.toThrow(/open in another process \(pid 1\)/);
    writeFileSync(`${data}.lock`, "999999999");
    db = await openPglite(data);
    expect(await db.query("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });
});
