import { createWriteStream } from "node:fs";
import { copyFile, mkdir, open, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  type ByteRange,
  baseName,
  isAtOrBelow,
  parentPath,
  type VolumeChange,
  type VolumeEntry,
  type VolumeSource,
  type VolumeVersion,
} from "./volume-source.js";

/** Why a view refused an operation; `code` is what a file system would answer. */
export class VolumeViewError extends Error {
  constructor(
    readonly code: "ENOENT" | "EEXIST" | "EISDIR" | "ENOTDIR" | "EROFS" | "EINVAL",
    message: string,
  ) {
    super(message);
    this.name = "VolumeViewError";
  }
}

/** A change this container made and has not committed. */
type Pending =
  /** New bytes, in a file of the view's scratch directory. */
  | { kind: "file"; file: string; size: number; mtimeMs: number; etag: string }
  /** The bytes a committed version holds at another path (a rename or copy of a committed file). */
  | { kind: "ref"; version: VolumeVersion; path: string; size: number; mtimeMs: number; etag: string }
  /** A directory made here; `opaque` when it replaces a deleted one, whose committed children stay hidden. */
  | { kind: "dir"; opaque: boolean; mtimeMs: number; etag: string }
  | { kind: "deleted" };

/** How a file was shown last, so that a changed file never looks unchanged to a cache (see `present`). */
interface Shown {
  etag: string;
  size: number;
  mtimeMs: number;
}

export interface VolumeViewOptions {
  source: VolumeSource;
  /** The committed version the view starts from; the latest when omitted. */
  base?: VolumeVersion;
  /** Where written files wait for a commit; created, and removed by `close`. */
  scratchDir: string;
  readOnly?: boolean;
}

/** What a commit did. */
export interface CommitResult {
  version: VolumeVersion;
  changes: VolumeChange[];
}

/**
 * One container's view of a volume: a committed base version plus the changes the container made since, which
 * stay its own until `commit` hands them to the source. `reload` moves the base to the latest version and keeps
 * the changes on top. Changes are applied under one lock, so a commit takes a consistent set of them; a file
 * being written is added only once all its bytes are on disk.
 */
export class VolumeView {
  private readonly source: VolumeSource;
  private readonly scratchDir: string;
  readonly readOnly: boolean;
  private baseVersion: VolumeVersion | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly shown = new Map<string, Shown>();
  private lock: Promise<unknown> = Promise.resolve();
  private files = 0;

  constructor(options: VolumeViewOptions) {
    this.source = options.source;
    this.scratchDir = options.scratchDir;
    this.readOnly = options.readOnly ?? false;
    this.baseVersion = options.base;
  }

  /** Creates the scratch directory and settles the base version. */
  async open(): Promise<void> {
    await mkdir(this.scratchDir, { recursive: true, mode: 0o700 });
    this.baseVersion ??= await this.source.latest();
  }

  get base(): VolumeVersion {
    if (this.baseVersion === undefined) throw new Error("VolumeView.open() was not called");
    return this.baseVersion;
  }

  /** Paths with uncommitted changes. */
  get pendingPaths(): string[] {
    return [...this.pending.keys()];
  }

  async stat(path: string): Promise<VolumeEntry | undefined> {
    const entry = await this.lookup(path);
    return entry && this.present(entry);
  }

  /** The children of `dir`, or undefined when it is not a directory. */
  async list(dir: string): Promise<VolumeEntry[] | undefined> {
    return (await this.listLocked(dir))?.map((entry) => this.present(entry));
  }

  /** Streams a file, or a range of it. */
  async read(path: string, range?: ByteRange): Promise<Readable> {
    const entry = await this.lookup(path);
    if (!entry) throw new VolumeViewError("ENOENT", `${path}: no such file`);
    if (entry.type === "dir") throw new VolumeViewError("EISDIR", `${path} is a directory`);
    const own = this.pending.get(path);
    if (own?.kind === "file") {
      // Opened before streaming starts: a commit may unlink the file, and an open descriptor keeps its bytes.
      const handle = await open(own.file, "r");
      const start = range?.offset ?? 0;
      if (range && range.length === 0) {
        await handle.close();
        return emptyStream();
      }
      return handle.createReadStream({
        start,
        ...(range ? { end: start + range.length - 1 } : {}),
      });
    }
    if (own?.kind === "ref") return this.source.read(own.version, own.path, range);
    return this.source.read(this.base, path, range);
  }

  /** Stores `body` as the file at `path`; resolves with whether it replaced one. */
  async write(path: string, body: Readable, mtimeMs = Date.now()): Promise<"created" | "replaced"> {
    this.refuseReadOnly(path);
    await this.checkParent(path);
    if ((await this.lookup(path))?.type === "dir") throw new VolumeViewError("EISDIR", `${path} is a directory`);
    const file = join(this.scratchDir, `w${++this.files}`);
    let size = 0;
    const counter = new PassThrough();
    counter.on("data", (chunk: Buffer) => {
      size += chunk.length;
    });
    try {
      await pipeline(body, counter, createWriteStream(file, { mode: 0o600 }));
    } catch (error) {
      await rm(file, { force: true });
      throw error;
    }
    return this.serialize(async () => {
      const existed = (await this.lookup(path)) !== undefined;
      await this.dropPending(path);
      this.pending.set(path, { kind: "file", file, size, mtimeMs, etag: `w:${file}` });
      return existed ? "replaced" : "created";
    });
  }

  async mkdir(path: string, mtimeMs = Date.now()): Promise<void> {
    this.refuseReadOnly(path);
    return this.serialize(async () => {
      if (await this.lookup(path)) throw new VolumeViewError("EEXIST", `${path} exists`);
      await this.checkParent(path);
      this.mkdirLocked(path, mtimeMs);
    });
  }

  /** Deletes a file, or a directory with everything below it. */
  async remove(path: string): Promise<void> {
    this.refuseReadOnly(path);
    if (path === "/") throw new VolumeViewError("EINVAL", "the volume's root cannot be deleted");
    return this.serialize(async () => {
      if (!(await this.lookup(path))) throw new VolumeViewError("ENOENT", `${path}: no such file or directory`);
      await this.removeLocked(path, true);
    });
  }

  /** Renames a file or directory; resolves with whether it replaced something at `to`. */
  async move(from: string, to: string, overwrite: boolean): Promise<"created" | "replaced"> {
    return this.transfer(from, to, overwrite, true);
  }

  async copy(from: string, to: string, overwrite: boolean): Promise<"created" | "replaced"> {
    return this.transfer(from, to, overwrite, false);
  }

  /**
   * Hands the pending changes to the source and moves the base to the version it made. Changes made while the
   * source works stay pending for the next commit.
   */
  async commit(): Promise<CommitResult> {
    return this.serialize(async () => {
      if (this.readOnly || this.pending.size === 0) return { version: this.base, changes: [] };
      const taken = [...this.pending.entries()];
      const changes = toChanges(taken);
      const version = await this.source.commit(this.base, changes);
      for (const [path, change] of taken) {
        if (this.pending.get(path) !== change) continue;
        this.pending.delete(path);
        if (change.kind === "file") await rm(change.file, { force: true });
      }
      // The committed copy of a file this container wrote has new tags but the same bytes: keep showing it as
      // before, so caches keep what they hold.
      for (const [path, change] of taken) {
        if (change.kind !== "file" && change.kind !== "ref") continue;
        const shown = this.shown.get(path);
        const committed = await this.source.stat(version, path);
        if (shown?.etag === change.etag && committed?.size === shown.size) {
          this.shown.set(path, { ...shown, etag: committed.etag });
        }
      }
      this.baseVersion = version;
      return { version, changes };
    });
  }

  /** Moves the base to the latest committed version; pending changes stay on top. */
  async reload(): Promise<VolumeVersion> {
    return this.serialize(async () => {
      this.baseVersion = await this.source.latest();
      return this.baseVersion;
    });
  }

  /** Drops pending changes and the scratch directory. */
  async close(): Promise<void> {
    await this.serialize(async () => {
      this.pending.clear();
      await rm(this.scratchDir, { recursive: true, force: true });
    });
  }

  private async transfer(from: string, to: string, overwrite: boolean, move: boolean): Promise<"created" | "replaced"> {
    this.refuseReadOnly(to);
    if (isAtOrBelow(to, from))
      throw new VolumeViewError("EINVAL", `cannot ${move ? "move" : "copy"} ${from} into itself`);
    return this.serialize(async () => {
      const source = await this.lookup(from);
      if (!source) throw new VolumeViewError("ENOENT", `${from}: no such file or directory`);
      const existing = await this.lookup(to);
      if (existing && !overwrite) throw new VolumeViewError("EEXIST", `${to} exists`);
      await this.checkParent(to);
      if (existing) await this.removeLocked(to, true);
      await this.transferLocked(source, to, move);
      if (move) await this.removeLocked(from, false);
      return existing ? "replaced" : "created";
    });
  }

  private async transferLocked(source: VolumeEntry, to: string, move: boolean): Promise<void> {
    if (source.type === "dir") {
      this.mkdirLocked(to, source.mtimeMs);
      for (const child of (await this.listLocked(source.path)) ?? []) {
        await this.transferLocked(child, `${to === "/" ? "" : to}/${baseName(child.path)}`, move);
      }
      return;
    }
    const own = this.pending.get(source.path);
    if (own?.kind === "file") {
      if (move) {
        this.pending.delete(source.path); // the scratch file now belongs to `to`
        this.pending.set(to, own);
      } else {
        const file = join(this.scratchDir, `w${++this.files}`);
        await copyFile(own.file, file);
        this.pending.set(to, { ...own, file, etag: `w:${file}` });
      }
      return;
    }
    const ref =
      own?.kind === "ref" ? own : { version: this.base, path: source.path, size: source.size, etag: source.etag };
    this.pending.set(to, { kind: "ref", ...ref, mtimeMs: source.mtimeMs });
  }

  private async listLocked(dir: string): Promise<VolumeEntry[] | undefined> {
    if ((await this.lookup(dir))?.type !== "dir") return undefined;
    const own = this.pending.get(dir);
    const baseShows = !this.baseHidden(dir) && !(own?.kind === "dir" && own.opaque);
    const children = new Map<string, VolumeEntry>();
    for (const entry of (baseShows && (await this.source.list(this.base, dir))) || []) children.set(entry.path, entry);
    for (const [path, change] of this.pending) {
      if (path === "/" || parentPath(path) !== dir) continue;
      if (change.kind === "deleted") children.delete(path);
      else children.set(path, pendingEntry(path, change));
    }
    return [...children.values()];
  }

  private mkdirLocked(path: string, mtimeMs: number): void {
    const opaque = this.pending.get(path)?.kind === "deleted";
    this.pending.set(path, { kind: "dir", opaque, mtimeMs, etag: `d:${path}:${mtimeMs}` });
  }

  /** Forgets pending changes at and below `path` and hides the committed ones. */
  private async removeLocked(path: string, dropFiles: boolean): Promise<void> {
    for (const key of [...this.pending.keys()]) {
      if (key !== "/" && isAtOrBelow(key, path)) {
        if (dropFiles) await this.dropPending(key);
        else this.pending.delete(key);
      }
    }
    const inBase = !this.baseHidden(path) && (await this.source.stat(this.base, path)) !== undefined;
    if (inBase) this.pending.set(path, { kind: "deleted" });
  }

  private async dropPending(path: string): Promise<void> {
    const own = this.pending.get(path);
    this.pending.delete(path);
    if (own?.kind === "file") await unlink(own.file).catch(() => {});
  }

  /** The entry at `path`: a pending change, else the base's unless a change above hides it. */
  private async lookup(path: string): Promise<VolumeEntry | undefined> {
    const own = this.pending.get(path);
    if (own) return own.kind === "deleted" ? undefined : pendingEntry(path, own);
    if (this.baseHidden(path)) return undefined;
    return this.source.stat(this.base, path);
  }

  /** Whether a pending change above `path` (a deletion, a file, a directory made anew) hides the base there. */
  private baseHidden(path: string): boolean {
    for (let dir = parentPath(path); ; dir = parentPath(dir)) {
      const change = this.pending.get(dir);
      if (change && (change.kind !== "dir" || change.opaque)) return true;
      if (dir === "/") return false;
    }
  }

  private async checkParent(path: string): Promise<void> {
    const parent = await this.lookup(parentPath(path));
    if (!parent) throw new VolumeViewError("ENOENT", `${parentPath(path)}: no such directory`);
    if (parent.type !== "dir") throw new VolumeViewError("ENOTDIR", `${parentPath(path)} is not a directory`);
  }

  private refuseReadOnly(path: string): void {
    if (this.readOnly) throw new VolumeViewError("EROFS", `${path}: the volume is mounted read-only`);
  }

  /**
   * A file whose bytes changed must not look unchanged to rclone, which keys its cache on size and modification
   * time (seconds): a changed file with the same size and second as the one shown before is shown a second later.
   */
  private present(entry: VolumeEntry): VolumeEntry {
    if (entry.type !== "file") return entry;
    const shown = this.shown.get(entry.path);
    if (shown?.etag === entry.etag) return { ...entry, mtimeMs: shown.mtimeMs };
    let mtimeMs = entry.mtimeMs;
    if (shown && shown.size === entry.size && Math.floor(mtimeMs / 1000) <= Math.floor(shown.mtimeMs / 1000)) {
      mtimeMs = (Math.floor(shown.mtimeMs / 1000) + 1) * 1000;
    }
    this.shown.set(entry.path, { etag: entry.etag, size: entry.size, mtimeMs });
    return { ...entry, mtimeMs };
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    const result = this.lock.then(task);
    this.lock = result.catch(() => {});
    return result;
  }
}

function pendingEntry(path: string, change: Exclude<Pending, { kind: "deleted" }>): VolumeEntry {
  if (change.kind === "dir") return { path, type: "dir", size: 0, mtimeMs: change.mtimeMs, etag: change.etag };
  return { path, type: "file", size: change.size, mtimeMs: change.mtimeMs, etag: change.etag };
}

/** Pending changes as a commit's change list: deletes, then directories (parents first), then files. */
function toChanges(taken: [string, Pending][]): VolumeChange[] {
  const deletes: VolumeChange[] = [];
  const dirs: VolumeChange[] = [];
  const puts: VolumeChange[] = [];
  for (const [path, change] of [...taken].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (change.kind === "deleted") deletes.push({ op: "delete", path });
    else if (change.kind === "dir") {
      if (change.opaque) deletes.push({ op: "delete", path });
      dirs.push({ op: "mkdir", path, mtimeMs: change.mtimeMs });
    } else if (change.kind === "file") {
      puts.push({ op: "put", path, content: { file: change.file }, size: change.size, mtimeMs: change.mtimeMs });
    } else {
      const content = { copyOf: { version: change.version, path: change.path } };
      puts.push({ op: "put", path, content, size: change.size, mtimeMs: change.mtimeMs });
    }
  }
  return [...deletes, ...dirs, ...puts];
}

function emptyStream(): Readable {
  const stream = new PassThrough();
  stream.end();
  return stream;
}
