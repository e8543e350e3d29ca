import { randomUUID } from "node:crypto";
import { expect, it } from "vitest";
import type { Store } from "./store.js";
import { type VolumeChange, type VolumeRow, VolumeStore } from "./volumes.js";

const SCOPE = { workspace: "ws-local", env: "main" };
const AUTHOR = { author: "token tk-test", note: "test" };

/** A chunk hash made from a word, for rows that name chunks the test never reads. */
const chunk = (word: string) => word.padEnd(64, "0").replace(/[^0-9a-f]/g, "a");
const file = (path: string, word = path, size = 1): VolumeChange => ({
  path,
  type: "file",
  size,
  mode: 0o644,
  mtimeMs: 1000,
  chunks: size === 0 ? [] : [chunk(word)],
});

/** The volume part of the store's conformance suite (see describeStoreConformance). */
export function volumeConformance(store: () => Store): void {
  const fresh = async (): Promise<VolumeRow> =>
    (await store().volumes.create(SCOPE, `v-${randomUUID().slice(0, 8)}`, { author: "t" })).volume;
  const paths = async (volume: VolumeRow, dir = "", options: { version?: number; recursive?: boolean } = {}) =>
    (await store().volumes.list(volume, dir, options)).entries.map((e) => (e.type === "dir" ? `${e.path}/` : e.path));
  const latest = async (volume: VolumeRow) => (await store().volumes.find(SCOPE, volume.name))!;

  it("volumes: keeps each volume's bytes, and holds a workspace's volumes to a quota without changing anything", async () => {
    const volume = await fresh();
    const used = (await store().volumes.listVolumes(SCOPE)).reduce((sum, v) => sum + v.bytes, 0);
    const volumes = new VolumeStore(store().db, used + 100);
    await volumes.commit(volume, [file("a/one", "one", 60), file("a/two", "two", 30)], AUTHOR);
    expect((await latest(volume)).bytes).toBe(90);
    const full = await latest(volume);
    await expect(volumes.commit(full, [file("three", "three", 20)], AUTHOR)).rejects.toMatchObject({
      code: "QUOTA_EXCEEDED",
      message: expect.stringMatching(/over their quota .*nothing was changed \(version 2 stays\).*SKIFF_VOLUME_QUOTA/),
    });
    await expect(volumes.checkRoom(full, 20)).rejects.toMatchObject({ code: "QUOTA_EXCEEDED" });
    expect(await latest(volume)).toEqual(full);
    // Replacing a file counts the difference; deleting frees; a rollback counts what it brings back.
    await volumes.commit(full, [file("a/one", "uno", 65)], AUTHOR);
    expect((await latest(volume)).bytes).toBe(95);
    await volumes.commit(await latest(volume), [{ path: "a", deleted: true }], AUTHOR);
    expect((await latest(volume)).bytes).toBe(0);
    await volumes.commit(await latest(volume), [file("three", "three", 20)], AUTHOR);
    expect((await latest(volume)).bytes).toBe(20);
    await volumes.rollback(await latest(volume), 3, AUTHOR);
    expect((await latest(volume)).bytes).toBe(95);
  });

  it("volumes: a volume a running container mounts is deleted only when forced", async () => {
    const volume = await fresh();
    const id = `ct-${randomUUID().slice(0, 13)}`;
    const container = { workerId: "wk-t", functionId: "fn-t", version: 1, workspace: "ws-local", appId: "ap-t" };
    await store().fleet.addContainer({
      id,
      ...container,
      env: "main",
      volumes: [{ volumeId: volume.id, readOnly: true }],
    });
    expect(await store().volumes.mountOf(id, volume.id)).toEqual({ readOnly: true });
    await expect(store().volumes.delete(SCOPE, volume.name)).rejects.toMatchObject({
      code: "CONFLICT",
      message: expect.stringMatching(/is mounted by running containers \(ct-.*--force/),
    });
    await store().fleet.setContainerState(id, "stopped", "done");
    expect(await store().volumes.delete(SCOPE, volume.name)).toBe(true);
    const again = await fresh();
    const other = `ct-${randomUUID().slice(0, 13)}`;
    await store().fleet.addContainer({
      id: other,
      ...container,
      env: "main",
      volumes: [{ volumeId: again.id, readOnly: false }],
    });
    expect(await store().volumes.delete(SCOPE, again.name, { force: true })).toBe(true);
  });

  it("volumes: creates by name per environment, once, and refuses bad names and unknown environments", async () => {
    const { volumes } = store();
    const name = `vol-${randomUUID().slice(0, 8)}`;
    const made = await volumes.create(SCOPE, name, { author: "t" });
    expect(made).toMatchObject({ created: true, volume: { name, version: 1, env: "main" } });
    await expect(volumes.create(SCOPE, name, { author: "t" })).rejects.toMatchObject({ code: "CONFLICT" });
    const again = await volumes.create(SCOPE, name, { author: "t", ifMissing: true });
    expect(again).toEqual({ created: false, volume: made.volume });
    await expect(volumes.create(SCOPE, "no/slash", { author: "t" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    await expect(volumes.create({ ...SCOPE, env: "nosuchenv" }, "x", { author: "t" })).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    expect((await volumes.listVolumes(SCOPE)).map((v) => v.name)).toContain(name);
    expect(await volumes.find({ ...SCOPE, workspace: "ws-other" }, name)).toBeUndefined();
    expect(await volumes.history(made.volume.id)).toMatchObject([{ version: 1, note: "created", changes: 0 }]);
    expect(await volumes.delete(SCOPE, name)).toBe(true);
    expect(await volumes.delete(SCOPE, name)).toBe(false);
    expect(await volumes.find(SCOPE, name)).toBeUndefined();
  });

  it("volumes: a commit makes parent directories and a version; older versions read as they were", async () => {
    const { volumes } = store();
    let volume = await fresh();
    const first = await volumes.commit(volume, [file("a/b/c.txt"), file("top.txt")], AUTHOR);
    expect(first).toEqual({ version: 2, previous: 1, changed: 4 });
    volume = await latest(volume);
    expect(await paths(volume)).toEqual(["a/", "top.txt"]);
    expect(await paths(volume, "/a/")).toEqual(["a/b/"]);
    expect(await paths(volume, "", { recursive: true })).toEqual(["a/", "top.txt", "a/b/", "a/b/c.txt"]);
    expect(await paths(volume, "a", { recursive: true })).toEqual(["a/b/", "a/b/c.txt"]);
    expect(await volumes.stat(volume, "a/b/c.txt")).toMatchObject({ type: "file", size: 1, version: 2 });
    await volumes.commit(volume, [file("top.txt", "new", 2), { path: "a", deleted: true }], AUTHOR);
    volume = await latest(volume);
    expect(volume.version).toBe(3);
    expect(await paths(volume, "", { recursive: true })).toEqual(["top.txt"]);
    expect(await volumes.stat(volume, "top.txt")).toMatchObject({ size: 2, chunks: [chunk("new")] });
    expect(await paths(volume, "", { version: 2, recursive: true })).toHaveLength(4);
    expect(await volumes.stat(volume, "top.txt", 2)).toMatchObject({ size: 1, version: 2 });
    expect(await volumes.stat(volume, "a/b/c.txt")).toBeUndefined();
    // Nothing changed: no version.
    expect(await volumes.commit(volume, [file("top.txt", "new", 2)], AUTHOR)).toMatchObject({ version: 3, changed: 0 });
    expect(await volumes.commit(volume, [{ path: "gone", deleted: true }], AUTHOR)).toMatchObject({ changed: 0 });
  });

  it("volumes: commits from one base merge; the same file is the last commit's; deletes propagate", async () => {
    const { volumes } = store();
    const volume = await fresh();
    await volumes.commit(volume, [file("shared.txt"), file("old.txt")], AUTHOR);
    const base = 2;
    await volumes.commit(volume, [file("a.txt"), file("shared.txt", "froma")], { ...AUTHOR, baseVersion: base });
    const last = await volumes.commit(
      volume,
      [file("b.txt"), file("shared.txt", "fromb"), { path: "old.txt", deleted: true }],
      {
        ...AUTHOR,
        baseVersion: base,
      },
    );
    expect(last).toMatchObject({ version: 4, previous: 3 });
    const now = await latest(volume);
    expect(await paths(now)).toEqual(["a.txt", "b.txt", "shared.txt"]);
    expect((await volumes.stat(now, "shared.txt"))?.chunks).toEqual([chunk("fromb")]);
    expect((await volumes.history(volume.id))[0]).toMatchObject({ version: 4, baseVersion: 2, changes: 3 });
    await expect(volumes.commit(now, [file("x")], { ...AUTHOR, baseVersion: 99 })).rejects.toMatchObject({
      code: "BAD_REQUEST",
    });
    await expect(volumes.commit(now, [{ ...file("x"), chunks: [] } as VolumeChange], AUTHOR)).rejects.toMatchObject({
      code: "BAD_REQUEST",
    });
    await expect(volumes.commit(now, [file("../up")], AUTHOR)).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("volumes: a file replaces a directory and its contents, a directory a file", async () => {
    const { volumes } = store();
    let volume = await fresh();
    await volumes.commit(volume, [file("d/x"), file("d/y/z"), file("f")], AUTHOR);
    await volumes.commit(volume, [file("d"), file("f/inside")], AUTHOR);
    volume = await latest(volume);
    expect(await paths(volume, "", { recursive: true })).toEqual(["d", "f/", "f/inside"]);
  });

  it("volumes: copies files and directories by their rows, sharing chunks", async () => {
    const { volumes } = store();
    let volume = await fresh();
    await volumes.commit(volume, [file("src/a"), file("src/sub/b"), file("one")], AUTHOR);
    await volumes.copy(volume, "src", "dst/copy", AUTHOR);
    await volumes.copy(volume, "one", "two", AUTHOR);
    volume = await latest(volume);
    expect(await paths(volume, "dst", { recursive: true })).toEqual([
      "dst/copy/",
      "dst/copy/a",
      "dst/copy/sub/",
      "dst/copy/sub/b",
    ]);
    expect((await volumes.stat(volume, "dst/copy/sub/b"))?.chunks).toEqual([chunk("src/sub/b")]);
    expect((await volumes.stat(volume, "two"))?.chunks).toEqual([chunk("one")]);
    await expect(volumes.copy(volume, "nope", "x", AUTHOR)).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(volumes.copy(volume, "src", "src/in", AUTHOR)).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("volumes: lists a large directory in pages", async () => {
    const { volumes } = store();
    let volume = await fresh();
    const names = Array.from({ length: 25 }, (_, i) => `d/f${String(i).padStart(2, "0")}`);
    await volumes.commit(
      volume,
      names.map((n) => file(n)),
      AUTHOR,
    );
    volume = await latest(volume);
    const seen: string[] = [];
    let after: string | undefined;
    do {
      const page = await volumes.list(volume, "d", { limit: 10, ...(after ? { after } : {}) });
      expect(page.entries.length).toBeLessThanOrEqual(10);
      seen.push(...page.entries.map((e) => e.path));
      after = page.next;
    } while (after);
    expect(seen).toEqual(names);
    await expect(volumes.list(volume, "d", { after: "junk" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
  });

  it("volumes: a commit writes the rows of what changed, whatever the volume holds", async () => {
    const { volumes, db } = store();
    const volume = await fresh();
    await volumes.commit(
      volume,
      Array.from({ length: 500 }, (_, i) => file(`many/f${i}`)),
      AUTHOR,
    );
    const rows = async () =>
      Number(
        (
          await db.query<{ n: number }>("SELECT count(*)::int AS n FROM volume_files WHERE volume_id = $1", [volume.id])
        )[0]!.n,
      );
    const before = await rows();
    await volumes.commit(volume, [file("many/f7", "changed")], AUTHOR);
    expect((await rows()) - before).toBe(1);
  });

  it("volumes: rolls back by writing what differs, as a new version", async () => {
    const { volumes, db } = store();
    let volume = await fresh();
    await volumes.commit(
      volume,
      [...Array.from({ length: 50 }, (_, i) => file(`keep/f${i}`)), file("x", "x1")],
      AUTHOR,
    ); // v2
    await volumes.commit(volume, [file("x", "x2"), file("new/y"), { path: "keep/f3", deleted: true }], AUTHOR); // v3
    const rolled = await volumes.rollback(volume, 2, { author: "t" });
    // x back to x1, keep/f3 back, new/ and new/y gone: 4 rows.
    expect(rolled).toEqual({ version: 4, previous: 3, changed: 4 });
    volume = await latest(volume);
    expect(await paths(volume, "", { recursive: true })).toEqual(
      await paths(volume, "", { version: 2, recursive: true }),
    );
    expect((await volumes.stat(volume, "x"))?.chunks).toEqual([chunk("x1")]);
    const [row] = await db.query<{ note: string }>(
      "SELECT note FROM volume_versions WHERE volume_id = $1 AND version = 4",
      [volume.id],
    );
    expect(row?.note).toBe("rollback to v2");
    await expect(volumes.rollback(volume, 9, { author: "t" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(volumes.rollback(volume, 4, { author: "t" })).rejects.toMatchObject({ code: "BAD_REQUEST" });
    // Rolling back to the empty first version deletes everything.
    await volumes.rollback(volume, 1, { author: "t" });
    expect(await paths(await latest(volume), "", { recursive: true })).toEqual([]);
  });
}
