import { randomUUID } from "node:crypto";
import { CodedError } from "@skiff/protocol/coded-error";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import type { VolumeEntryView } from "@skiff/protocol/http/volumes";
import { formatBytes } from "@skiff/protocol/units";
import { type VolumePath, volumeAncestors, volumeChunkCount, volumePath } from "@skiff/protocol/volume-path";
import type { Db } from "./db.js";
import type { Scope } from "./scope.js";

/** What went wrong with a volume or a path in it: `code` picks the HTTP status. */
export class VolumeError extends CodedError<"NOT_FOUND" | "CONFLICT" | "BAD_REQUEST" | "QUOTA_EXCEEDED"> {
  constructor(code: VolumeError["code"], message: string) {
    super(code, message);
    this.name = "VolumeError";
  }
}

/** A volume as stored: `version` is its latest. */
export interface VolumeRow {
  id: string;
  workspace: string;
  env: string;
  name: string;
  version: number;
  /** What its latest version's files hold, in bytes. */
  bytes: number;
  createdAt: Date;
}

/**
 * A file or directory of a volume at some version (see protocol's VolumeEntryView): its path normalized
 * without a leading slash, and the sha256 of each chunk of a file (empty for a directory).
 */
export type VolumeEntry = Omit<VolumeEntryView, "chunks"> & { chunks: string[] };

/** One change of a commit: a file's new content, a directory, or a path deleted (with all under it). */
export type VolumeChange =
  | { path: string; type: "file"; size: number; mode: number; mtimeMs: number; chunks: string[] }
  | { path: string; type: "dir"; mode: number; mtimeMs: number }
  | { path: string; deleted: true };

/** A version of a volume: who made it and why. */
export interface VolumeVersion {
  version: number;
  createdAt: Date;
  /** Who made it: `token tk-… (name)`, `container ct-…`, with the client that sent it. */
  author: string;
  /** What it did: "put a.txt", "rollback to v3", "commit of 12 changes". */
  note: string;
  /** How many paths it changed. */
  changes: number;
  /** For a commit: the version its changes were made from (they are applied onto the latest all the same). */
  baseVersion: number | null;
}

/** Who makes a version, and the note it carries. */
export interface VersionInfo {
  author: string;
  note: string;
  baseVersion?: number;
}

/** A file row as read: a row as written, with the version that wrote it. */
type FileDbRow = NewRow & { version: number };

/** A row to write at the new version. */
interface NewRow {
  dir: string;
  name: string;
  deleted: boolean;
  type: "file" | "dir";
  size: number;
  mode: number;
  mtime_ms: number;
  chunks: string;
}

/** What a path is at some version: undefined when it is not there (never written, or deleted). */
type State = NewRow | undefined;

const VOLUME_COLUMNS = "id, workspace, env, name, version, bytes, created_at";
const FILE_COLUMNS = "dir, name, version, deleted, type, size, mode, mtime_ms, chunks";
const DIR_MODE = 0o755;
/** Rows read at once when a whole subtree is needed (a recursive delete or copy). */
const PAGE = 5000;

/**
 * Volumes of an environment, their versions and their files. Every change makes a version. A file row is
 * written only for a path that changed, at the version that changed it; reading version V takes, per
 * path, the newest row at or below V, and a deleted path is a tombstone row. So a commit writes what
 * changed, whatever the volume's size, and one directory is listed from its own rows (the index is by
 * volume, directory, name, version). Directories are rows too, so a listing never scans what is below.
 *
 * @example
 * const { volume } = await store.volumes.create(scope, "models", { ifMissing: true, author: "cli" });
 * await store.volumes.commit(volume.id, [{ path: "a.txt", type: "file", size: 1, mode: 0o644, mtimeMs: Date.now(), chunks: [hash] }], { author, note: "put a.txt" });
 * await store.volumes.list(volume.id, "", { version: volume.version });
 */
export class VolumeStore {
  constructor(
    private readonly db: Db,
    /** The most bytes a workspace's volumes may hold (see StoreOptions.volumeQuotaBytes). */
    private readonly quotaBytes = Number.POSITIVE_INFINITY,
  ) {}

  /** Creates a volume at version 1 (empty); with `ifMissing`, an existing one is answered instead. */
  async create(
    scope: Scope,
    name: string,
    options: { ifMissing?: boolean; author: string },
  ): Promise<{ volume: VolumeRow; created: boolean }> {
    if (!RESOURCE_NAME.test(name)) {
      throw new VolumeError(
        "BAD_REQUEST",
        `"${name}" is not a volume name: use letters, digits, '-' and '_' (at most 63, starting with a letter or digit)`,
      );
    }
    return this.db.transaction(async (tx) => {
      // A share lock: the environment cannot be deleted until this commits.
      const env = await tx.query("SELECT 1 FROM environments WHERE workspace = $1 AND name = $2 FOR SHARE", [
        scope.workspace,
        scope.env,
      ]);
      if (env.length === 0) {
        throw new VolumeError(
          "NOT_FOUND",
          `no environment "${scope.env}": create it with \`skiff env create ${scope.env}\``,
        );
      }
      const id = `vo-${randomUUID()}`;
      const [row] = await tx.query<VolumeDbRow>(
        `INSERT INTO volumes (id, workspace, env, name, version) VALUES ($1, $2, $3, $4, 1)
         ON CONFLICT (workspace, env, name) DO NOTHING RETURNING ${VOLUME_COLUMNS}`,
        [id, scope.workspace, scope.env, name],
      );
      if (row) {
        await tx.query(
          "INSERT INTO volume_versions (volume_id, version, author, note, changes) VALUES ($1, 1, $2, 'created', 0)",
          [id, options.author],
        );
        return { volume: toVolume(row), created: true };
      }
      const existing = await this.findIn(tx, scope, name);
      if (!existing) throw new VolumeError("CONFLICT", `volume "${name}" is being deleted: try again`);
      if (!options.ifMissing) {
        throw new VolumeError("CONFLICT", `volume "${name}" already exists in environment "${scope.env}"`);
      }
      return { volume: existing, created: false };
    });
  }

  /**
   * The volume a mount names: made first (by `author`) when it is marked `createIfMissing`; undefined when it
   * is not there and may not be made.
   */
  async resolve(
    scope: Scope,
    name: string,
    options: { createIfMissing: boolean | undefined; author: string },
  ): Promise<VolumeRow | undefined> {
    if (!options.createIfMissing) return this.find(scope, name);
    return (await this.create(scope, name, { ifMissing: true, author: options.author })).volume;
  }

  /** The volume of that name in the scope, if any. */
  async find(scope: Scope, name: string): Promise<VolumeRow | undefined> {
    return this.findIn(this.db, scope, name);
  }

  private async findIn(db: Db, scope: Scope, name: string): Promise<VolumeRow | undefined> {
    const [row] = await db.query<VolumeDbRow>(
      `SELECT ${VOLUME_COLUMNS} FROM volumes WHERE workspace = $1 AND env = $2 AND name = $3`,
      [scope.workspace, scope.env, name],
    );
    return row ? toVolume(row) : undefined;
  }

  /**
   * How a container mounts a volume: `{ readOnly }`, or undefined when it does not (its token may then not
   * use the volume at all).
   */
  async mountOf(containerId: string, volumeId: string): Promise<{ readOnly: boolean } | undefined> {
    const [row] = await this.db.query<{ read_only: boolean }>(
      "SELECT read_only FROM container_volumes WHERE container_id = $1 AND volume_id = $2",
      [containerId, volumeId],
    );
    return row ? { readOnly: row.read_only } : undefined;
  }

  /** The volumes of an environment, by name. */
  async listVolumes(scope: Scope): Promise<VolumeRow[]> {
    const rows = await this.db.query<VolumeDbRow>(
      `SELECT ${VOLUME_COLUMNS} FROM volumes WHERE workspace = $1 AND env = $2 ORDER BY name`,
      [scope.workspace, scope.env],
    );
    return rows.map(toVolume);
  }

  /**
   * Deletes a volume with its versions and file rows; false if there is none by that name. Its chunks stay
   * in the blob store (other files, volumes or workspaces may hold the same bytes). A volume that a running
   * container mounts is refused (CONFLICT) unless `force`: those mounts then fail.
   */
  async delete(scope: Scope, name: string, options: { force?: boolean } = {}): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const [row] = await tx.query<{ id: string }>(
        "SELECT id FROM volumes WHERE workspace = $1 AND env = $2 AND name = $3 FOR UPDATE",
        [scope.workspace, scope.env, name],
      );
      if (!row) return false;
      if (!options.force) {
        const mounted = await tx.query<{ id: string; app: string | null }>(
          `SELECT c.id, a.name AS app FROM container_volumes cv JOIN containers c ON c.id = cv.container_id
           LEFT JOIN apps a ON a.id = c.app_id
           WHERE cv.volume_id = $1 AND c.state <> 'stopped' ORDER BY c.id LIMIT 3`,
          [row.id],
        );
        if (mounted.length > 0) {
          const which = mounted.map((c) => `${c.id}${c.app ? ` of app ${c.app}` : ""}`).join(", ");
          const apps = [...new Set(mounted.flatMap((c) => (c.app ? [c.app] : [])))];
          const stop = apps.length > 0 ? ` (\`skiff app stop ${apps[0]}\`)` : "";
          throw new VolumeError(
            "CONFLICT",
            `volume "${name}" is mounted by running containers (${which}): stop their apps first${stop}, or delete it with --force (their mounts then fail)`,
          );
        }
      }
      await tx.query("DELETE FROM volume_files WHERE volume_id = $1", [row.id]);
      await tx.query("DELETE FROM volume_versions WHERE volume_id = $1", [row.id]);
      await tx.query("DELETE FROM volumes WHERE id = $1", [row.id]);
      return true;
    });
  }

  /** The versions of a volume, newest first: at most `limit`, below `before` if given. */
  async history(volumeId: string, options: { limit?: number; before?: number } = {}): Promise<VolumeVersion[]> {
    const rows = await this.db.query<{
      version: number;
      created_at: Date | string;
      author: string;
      note: string;
      changes: number;
      base_version: number | null;
    }>(
      `SELECT version, created_at, author, note, changes, base_version FROM volume_versions
       WHERE volume_id = $1 AND version < $2 ORDER BY version DESC LIMIT $3`,
      [volumeId, options.before ?? 2 ** 31 - 1, options.limit ?? 100],
    );
    return rows.map((row) => ({
      version: row.version,
      createdAt: new Date(row.created_at),
      author: row.author,
      note: row.note,
      changes: row.changes,
      baseVersion: row.base_version,
    }));
  }

  /** What is at `path` at `version` (the latest by default); the root is always a directory. */
  async stat(volume: VolumeRow, path: string, version = volume.version): Promise<VolumeEntry | undefined> {
    const at = volumePath(path);
    if (at.path === "") return { path: "", type: "dir", size: 0, mode: DIR_MODE, mtimeMs: 0, chunks: [], version };
    const [row] = await this.db.query<FileDbRow>(
      `SELECT ${FILE_COLUMNS} FROM volume_files WHERE volume_id = $1 AND dir = $2 AND name = $3 AND version <= $4
       ORDER BY version DESC LIMIT 1`,
      [volume.id, at.dir, at.name, version],
    );
    return row && !row.deleted ? toEntry(row) : undefined;
  }

  /**
   * The entries of directory `path` at `version`, by name, from after `after` (the `next` of the page
   * before), at most `limit`. Recursive: everything below, ordered by directory then name. Reads the
   * rows of that directory (or subtree) only.
   */
  async list(
    volume: VolumeRow,
    path: string,
    options: { version?: number; recursive?: boolean; after?: string; limit?: number } = {},
  ): Promise<{ entries: VolumeEntry[]; next: string | undefined }> {
    return this.listIn(this.db, volume.id, volumePath(path).path, { version: volume.version, ...options });
  }

  private async listIn(
    db: Db,
    volumeId: string,
    dir: string,
    options: { version: number; recursive?: boolean; after?: string; limit?: number },
  ): Promise<{ entries: VolumeEntry[]; next: string | undefined }> {
    const limit = Math.max(1, Math.min(options.limit ?? 1000, 10_000));
    const [afterDir, afterName] = options.after ? parseCursor(options.after) : [undefined, undefined];
    const params: unknown[] = [volumeId, options.version, limit + 1];
    const where: string[] = ["volume_id = $1", "version <= $2"];
    const param = (value: unknown) => {
      params.push(value);
      return `$${params.length}`;
    };
    if (!options.recursive) where.push(`dir = ${param(dir)}`);
    else if (dir !== "") {
      // Everything in `dir` and below: `dir` itself, and directories from "dir/" up to "dir0" ('0' follows '/').
      where.push(`(dir = ${param(dir)} OR (dir >= ${param(`${dir}/`)} AND dir < ${param(`${dir}0`)}))`);
    }
    if (afterName !== undefined) where.push(`(dir, name) > (${param(afterDir)}, ${param(afterName)})`);
    const rows = await db.query<FileDbRow>(
      `SELECT ${FILE_COLUMNS} FROM (
         SELECT DISTINCT ON (dir, name) ${FILE_COLUMNS} FROM volume_files WHERE ${where.join(" AND ")}
         ORDER BY dir, name, version DESC
       ) latest WHERE NOT deleted ORDER BY dir, name LIMIT $3`,
      params,
    );
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const last = page.at(-1);
    return { entries: page.map(toEntry), next: more && last ? cursorOf(last.dir, last.name) : undefined };
  }

  /**
   * Applies `changes` onto the latest version as a new version, in order: a file or directory replaces what
   * was at its path (a directory there goes, with everything in it), its parent directories are made as
   * needed, and a deleted path takes everything below it. So commits made from different versions merge:
   * different paths both land, the same path is the last commit's. Chunks must already be blobs the
   * caller's workspace may read (the caller checks). Answers the new version, or the latest when nothing
   * changed.
   */
  async commit(
    volume: VolumeRow,
    changes: readonly VolumeChange[],
    info: VersionInfo,
  ): Promise<{ version: number; previous: number; changed: number }> {
    const parsed = changes.map((change) => ({ change, at: checkChange(change) }));
    return this.db.transaction(async (tx) => {
      const latest = await this.lock(tx, volume);
      if (info.baseVersion !== undefined && (info.baseVersion < 1 || info.baseVersion > latest)) {
        throw new VolumeError(
          "BAD_REQUEST",
          `volume "${volume.name}" has no version ${info.baseVersion} (its latest is ${latest})`,
        );
      }
      const next = latest + 1;
      const writes = new Writes(
        await this.states(
          tx,
          volume.id,
          parsed.map((p) => p.at),
        ),
      );
      for (const { change, at } of parsed) {
        if ("deleted" in change) {
          await this.remove(tx, volume.id, latest, writes, at);
          continue;
        }
        this.makeParents(writes, at, change.mtimeMs);
        const current = writes.get(at.path);
        if (current?.type === "dir" && change.type === "file") await this.remove(tx, volume.id, latest, writes, at);
        writes.set(at, {
          dir: at.dir,
          name: at.name,
          deleted: false,
          type: change.type,
          size: change.type === "file" ? change.size : 0,
          mode: change.mode,
          mtime_ms: change.mtimeMs,
          chunks: change.type === "file" ? change.chunks.join("") : "",
        });
      }
      return this.write(tx, volume, latest, next, writes.changed(), info);
    });
  }

  /**
   * A new version whose files are those of `path`'s subtree copied to `to` (a file or a directory, with
   * everything in it), replacing what was there. Copies rows, never bytes: the chunks are shared.
   */
  async copy(
    volume: VolumeRow,
    from: string,
    to: string,
    info: VersionInfo,
  ): Promise<{ version: number; previous: number; changed: number }> {
    const source = volumePath(from);
    const target = volumePath(to);
    if (target.path === "") throw new VolumeError("BAD_REQUEST", "cannot copy over the volume's root");
    if (source.path === "" || target.path === source.path || target.path.startsWith(`${source.path}/`)) {
      throw new VolumeError("BAD_REQUEST", `cannot copy "${source.path || "/"}" into itself ("${target.path}")`);
    }
    return this.db.transaction(async (tx) => {
      const latest = await this.lock(tx, volume);
      const [found] = await tx.query<FileDbRow>(
        `SELECT ${FILE_COLUMNS} FROM volume_files WHERE volume_id = $1 AND dir = $2 AND name = $3
         ORDER BY version DESC LIMIT 1`,
        [volume.id, source.dir, source.name],
      );
      if (!found || found.deleted) {
        throw new VolumeError("NOT_FOUND", `volume "${volume.name}" has no "${source.path}"`);
      }
      const copied: NewRow[] = [{ ...stateOf(found), dir: target.dir, name: target.name }];
      if (found.type === "dir") {
        for await (const entry of this.subtree(tx, volume.id, latest, source.path)) {
          const moved = volumePath(`${target.path}${entry.path.slice(source.path.length)}`);
          copied.push({ ...stateOfEntry(entry), dir: moved.dir, name: moved.name });
        }
      }
      const writes = new Writes(await this.states(tx, volume.id, [target]));
      this.makeParents(writes, target, Date.now());
      if (writes.get(target.path)) await this.remove(tx, volume.id, latest, writes, target);
      for (const row of copied) writes.set(volumePath(joinPath(row.dir, row.name)), row);
      return this.write(tx, volume, latest, latest + 1, writes.changed(), info);
    });
  }

  /**
   * A new version with the files of version `to`: only paths changed since `to` are read and written, so it
   * costs what differs, not the volume's size.
   */
  async rollback(
    volume: VolumeRow,
    to: number,
    info: Omit<VersionInfo, "note">,
  ): Promise<{ version: number; previous: number; changed: number }> {
    return this.db.transaction(async (tx) => {
      const latest = await this.lock(tx, volume);
      if (!Number.isInteger(to) || to < 1 || to > latest) {
        throw new VolumeError(
          "NOT_FOUND",
          `volume "${volume.name}" has no version ${to}: see \`skiff volume history ${volume.name}\``,
        );
      }
      if (to === latest) throw new VolumeError("BAD_REQUEST", `version ${to} of "${volume.name}" is the latest`);
      // Every path written since `to`, with what it was at `to` (if anything) and what it is now.
      const rows = await tx.query<FileDbRow & { at_to: boolean }>(
        `WITH changed AS (SELECT DISTINCT dir, name FROM volume_files WHERE volume_id = $1 AND version > $2)
         SELECT DISTINCT ON (f.dir, f.name, f.version <= $2) ${FILE_COLUMNS.split(", ")
           .map((c) => `f.${c}`)
           .join(", ")}, f.version <= $2 AS at_to
         FROM changed c JOIN volume_files f ON f.volume_id = $1 AND f.dir = c.dir AND f.name = c.name
         ORDER BY f.dir, f.name, f.version <= $2, f.version DESC`,
        [volume.id, to],
      );
      const then = new Map<string, State>();
      const now = new Map<string, FileDbRow>();
      for (const row of rows) {
        const key = joinPath(row.dir, row.name);
        if (row.at_to) then.set(key, row.deleted ? undefined : stateOf(row));
        else now.set(key, row);
      }
      const changed: NewRow[] = [];
      for (const [key, row] of now) {
        const before = then.get(key);
        const current = row.deleted ? undefined : stateOf(row);
        if (sameState(before, current)) continue;
        changed.push(before ?? tombstone(row.dir, row.name));
      }
      return this.write(tx, volume, latest, latest + 1, changed, { ...info, note: `rollback to v${to}` });
    });
  }

  /** Locks the volume's row (commits of one volume go one at a time) and answers its latest version. */
  private async lock(tx: Db, volume: VolumeRow): Promise<number> {
    const [row] = await tx.query<{ version: number }>("SELECT version FROM volumes WHERE id = $1 FOR UPDATE", [
      volume.id,
    ]);
    if (!row) throw new VolumeError("NOT_FOUND", `volume "${volume.name}" was deleted`);
    return row.version;
  }

  /** What each of these paths and their parents is now, in one query. */
  private async states(tx: Db, volumeId: string, paths: VolumePath[]): Promise<Map<string, State>> {
    const wanted = new Map<string, VolumePath>();
    for (const at of paths) {
      wanted.set(at.path, at);
      for (const parent of volumeAncestors(at.path)) wanted.set(parent, volumePath(parent));
    }
    wanted.delete("");
    const found = new Map<string, State>();
    if (wanted.size === 0) return found;
    const list = [...wanted.values()];
    const rows = await tx.query<FileDbRow>(
      `SELECT DISTINCT ON (f.dir, f.name) ${FILE_COLUMNS.split(", ")
        .map((c) => `f.${c}`)
        .join(", ")}
       FROM unnest($2::text[], $3::text[]) AS w (dir, name)
       JOIN volume_files f ON f.volume_id = $1 AND f.dir = w.dir AND f.name = w.name
       ORDER BY f.dir, f.name, f.version DESC`,
      [volumeId, list.map((at) => at.dir), list.map((at) => at.name)],
    );
    for (const at of list) found.set(at.path, undefined);
    for (const row of rows) found.set(joinPath(row.dir, row.name), row.deleted ? undefined : stateOf(row));
    return found;
  }

  /** Makes the directories above `at` that are not directories (a file in the way is replaced). */
  private makeParents(writes: Writes, at: VolumePath, mtimeMs: number): void {
    for (const parent of volumeAncestors(at.path)) {
      if (writes.get(parent)?.type === "dir") continue;
      const p = volumePath(parent);
      writes.set(p, {
        dir: p.dir,
        name: p.name,
        deleted: false,
        type: "dir",
        size: 0,
        mode: DIR_MODE,
        mtime_ms: mtimeMs,
        chunks: "",
      });
    }
  }

  /** Deletes `at` and, for a directory, everything below it: as stored, and as this commit wrote it so far. */
  private async remove(tx: Db, volumeId: string, latest: number, writes: Writes, at: VolumePath): Promise<void> {
    writes.dropBelow(at.path);
    if (at.path === "" || writes.stored(at.path)?.type === "dir") {
      for await (const entry of this.subtree(tx, volumeId, latest, at.path)) {
        writes.set(volumePath(entry.path), tombstone(...dirAndName(entry.path)));
      }
    }
    if (at.path !== "") writes.set(at, tombstone(at.dir, at.name));
  }

  /** Everything below directory `path` at `version`, page by page. */
  private async *subtree(tx: Db, volumeId: string, version: number, path: string): AsyncGenerator<VolumeEntry> {
    let after: string | undefined;
    do {
      const page = await this.listIn(tx, volumeId, path, {
        version,
        recursive: true,
        limit: PAGE,
        ...(after ? { after } : {}),
      });
      yield* page.entries;
      after = page.next;
    } while (after);
  }

  /** Writes the rows of version `next` and the version itself, unless nothing changed. */
  private async write(
    tx: Db,
    volume: VolumeRow,
    latest: number,
    next: number,
    rows: NewRow[],
    info: VersionInfo,
  ): Promise<{ version: number; previous: number; changed: number }> {
    if (rows.length === 0) return { version: latest, previous: latest, changed: 0 };
    const bytes = await this.bytesAfter(tx, volume, latest, rows);
    await tx.query(
      `INSERT INTO volume_files (volume_id, version, dir, name, deleted, type, size, mode, mtime_ms, chunks)
       SELECT $1, $2, r.dir, r.name, r.deleted, r.type, r.size, r.mode, r.mtime_ms, r.chunks
       FROM jsonb_to_recordset($3::text::jsonb)
         AS r (dir text, name text, deleted boolean, type text, size float8, mode int, mtime_ms float8, chunks text)`,
      [volume.id, next, JSON.stringify(rows)],
    );
    await tx.query(
      `INSERT INTO volume_versions (volume_id, version, author, note, changes, base_version)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [volume.id, next, info.author, info.note, rows.length, info.baseVersion ?? null],
    );
    await tx.query("UPDATE volumes SET version = $2, bytes = $3 WHERE id = $1", [volume.id, next, bytes]);
    return { version: next, previous: latest, changed: rows.length };
  }

  /** Throws QUOTA_EXCEEDED if `volume`'s workspace cannot take `growth` more bytes now. */
  async checkRoom(volume: VolumeRow, growth: number): Promise<void> {
    if (growth <= 0 || !Number.isFinite(this.quotaBytes)) return;
    await this.withinQuota(this.db, volume, growth, volume.version);
  }

  /**
   * What the volume holds once `rows` replace their paths at `latest`; refuses (QUOTA_EXCEEDED) a change that
   * grows the workspace's volumes past the quota. Shrinking is always allowed.
   */
  private async bytesAfter(tx: Db, volume: VolumeRow, latest: number, rows: NewRow[]): Promise<number> {
    const live = (row: { deleted: boolean; type: string; size: number | string }) =>
      !row.deleted && row.type === "file" ? Number(row.size) : 0;
    const [before] = await tx.query<{ bytes: number | string }>(
      `SELECT COALESCE(SUM(CASE WHEN NOT p.deleted AND p.type = 'file' THEN p.size ELSE 0 END), 0) AS bytes
       FROM unnest($2::text[], $3::text[]) AS w (dir, name)
       CROSS JOIN LATERAL (
         SELECT f.deleted, f.type, f.size FROM volume_files f
         WHERE f.volume_id = $1 AND f.dir = w.dir AND f.name = w.name AND f.version <= $4
         ORDER BY f.version DESC LIMIT 1
       ) p`,
      [volume.id, rows.map((r) => r.dir), rows.map((r) => r.name), latest],
    );
    const [current] = await tx.query<{ bytes: number | string }>("SELECT bytes FROM volumes WHERE id = $1", [
      volume.id,
    ]);
    const growth = rows.reduce((sum, row) => sum + live(row), 0) - Number(before?.bytes ?? 0);
    const after = Number(current?.bytes ?? 0) + growth;
    if (growth > 0 && Number.isFinite(this.quotaBytes)) await this.withinQuota(tx, volume, growth, latest);
    return after;
  }

  private async withinQuota(db: Db, volume: VolumeRow, growth: number, latest: number): Promise<void> {
    const [used] = await db.query<{ bytes: number | string }>(
      "SELECT COALESCE(SUM(bytes), 0) AS bytes FROM volumes WHERE workspace = $1",
      [volume.workspace],
    );
    const total = Number(used?.bytes ?? 0) + growth;
    if (total > this.quotaBytes) {
      throw new VolumeError(
        "QUOTA_EXCEEDED",
        `this change to volume "${volume.name}" would bring the workspace's volumes to ${formatBytes(total)}, over their quota of ${formatBytes(this.quotaBytes)}: nothing was changed (version ${latest} stays); remove files or volumes, or ask an admin to raise SKIFF_VOLUME_QUOTA`,
      );
    }
  }
}

/**
 * A commit's rows so far, over what the paths were before it (`stored`). Only rows that change a path are
 * written.
 */
class Writes {
  private readonly rows = new Map<string, NewRow>();

  constructor(private readonly before: Map<string, State>) {}

  /** The path as this commit leaves it so far. */
  get(path: string): State {
    const row = this.rows.get(path);
    if (row) return row.deleted ? undefined : row;
    return this.before.get(path);
  }

  /** The path as it was before this commit (only for paths whose state was read). */
  stored(path: string): State {
    return this.before.get(path);
  }

  set(at: VolumePath, row: NewRow): void {
    this.rows.set(at.path, row);
  }

  /** Forgets this commit's writes below `path` (a deleted directory takes them). */
  dropBelow(path: string): void {
    const prefix = path === "" ? "" : `${path}/`;
    for (const key of this.rows.keys()) if (key.startsWith(prefix) && key !== path) this.rows.delete(key);
  }

  /** The rows that change something: a tombstone of a path that was not there, or a row equal to it, is not. */
  changed(): NewRow[] {
    const out: NewRow[] = [];
    for (const [path, row] of this.rows) {
      const was = this.before.has(path) ? this.before.get(path) : "unknown";
      if (was === "unknown") out.push(row);
      else if (!sameState(was, row.deleted ? undefined : row)) out.push(row);
    }
    return out;
  }
}

interface VolumeDbRow {
  id: string;
  workspace: string;
  env: string;
  name: string;
  version: number;
  bytes: number | string;
  created_at: Date | string;
}

function toVolume(row: VolumeDbRow): VolumeRow {
  return {
    id: row.id,
    workspace: row.workspace,
    env: row.env,
    name: row.name,
    version: row.version,
    bytes: Number(row.bytes),
    createdAt: new Date(row.created_at),
  };
}

function toEntry(row: FileDbRow): VolumeEntry {
  return {
    path: joinPath(row.dir, row.name),
    type: row.type,
    size: Number(row.size),
    mode: row.mode,
    mtimeMs: Number(row.mtime_ms),
    chunks: splitChunks(row.chunks),
    version: row.version,
  };
}

function stateOf(row: FileDbRow): NewRow {
  return {
    dir: row.dir,
    name: row.name,
    deleted: false,
    type: row.type,
    size: Number(row.size),
    mode: row.mode,
    mtime_ms: Number(row.mtime_ms),
    chunks: row.chunks,
  };
}

function stateOfEntry(entry: VolumeEntry): NewRow {
  const [dir, name] = dirAndName(entry.path);
  return {
    dir,
    name,
    deleted: false,
    type: entry.type,
    size: entry.size,
    mode: entry.mode,
    mtime_ms: entry.mtimeMs,
    chunks: entry.chunks.join(""),
  };
}

function tombstone(dir: string, name: string): NewRow {
  return { dir, name, deleted: true, type: "file", size: 0, mode: 0, mtime_ms: 0, chunks: "" };
}

function sameState(a: State, b: State): boolean {
  if (!a || !b) return a === b;
  return (
    a.type === b.type && a.size === b.size && a.mode === b.mode && a.mtime_ms === b.mtime_ms && a.chunks === b.chunks
  );
}

function joinPath(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

function dirAndName(path: string): [string, string] {
  const at = volumePath(path);
  return [at.dir, at.name];
}

function splitChunks(chunks: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < chunks.length; i += 64) out.push(chunks.slice(i, i + 64));
  return out;
}

/** A listing's cursor: the last entry's directory and name. */
function cursorOf(dir: string, name: string): string {
  return Buffer.from(JSON.stringify([dir, name])).toString("base64url");
}

function parseCursor(cursor: string): [string, string] {
  try {
    const value = JSON.parse(Buffer.from(cursor, "base64url").toString()) as unknown;
    if (Array.isArray(value) && typeof value[0] === "string" && typeof value[1] === "string")
      return [value[0], value[1]];
  } catch {}
  throw new VolumeError("BAD_REQUEST", "the listing cursor is not one this server made: start the listing again");
}

const SHA256 = /^[0-9a-f]{64}$/;

/** Checks a change's shape (the route's schema checks types; the store checks what they must agree on). */
function checkChange(change: VolumeChange): VolumePath {
  let at: VolumePath;
  try {
    at = volumePath(change.path);
  } catch (error) {
    throw new VolumeError("BAD_REQUEST", (error as Error).message);
  }
  if (at.path === "" && !("deleted" in change)) {
    throw new VolumeError("BAD_REQUEST", "the volume's root is a directory: write files and directories inside it");
  }
  if ("deleted" in change || change.type === "dir") return at;
  if (!Number.isSafeInteger(change.size) || change.size < 0) {
    throw new VolumeError("BAD_REQUEST", `"${at.path}": size ${change.size} is not a size`);
  }
  if (change.chunks.length !== volumeChunkCount(change.size)) {
    throw new VolumeError(
      "BAD_REQUEST",
      `"${at.path}": a file of ${change.size} bytes has ${volumeChunkCount(change.size)} chunks, not ${change.chunks.length}`,
    );
  }
  for (const hash of change.chunks) {
    if (!SHA256.test(hash)) throw new VolumeError("BAD_REQUEST", `"${at.path}": chunk "${hash}" is not a sha256`);
  }
  return at;
}
