import type { Readable } from "node:stream";

/** Names one committed, immutable state of a volume. Opaque to the worker. */
export type VolumeVersion = string;

/** A file or directory of a volume, as one version holds it. Paths are absolute POSIX paths ("/", "/a/b.bin"). */
export interface VolumeEntry {
  path: string;
  type: "file" | "dir";
  /** Bytes; 0 for a directory. */
  size: number;
  mtimeMs: number;
  /**
   * Identifies the content: equal tags mean equal bytes (a content hash where the source has one). Mounts use it
   * to tell a changed file from an unchanged one with the same size and time.
   */
  etag: string;
}

/** A byte range of a file: `length` bytes from `offset`, cut at the end of the file. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** Where the bytes of a written file come from. */
export type ChangeContent =
  /** A file on the worker's disk, owned by the mount until the commit returns. */
  | { file: string }
  /** The bytes a committed version holds at a path: a rename or copy, sent without its bytes. */
  | { copyOf: { version: VolumeVersion; path: string } };

/**
 * One change a container made. A commit applies its changes in order: deletes first (a deleted directory takes
 * everything below it), then new directories, then files (their parent directories are implied).
 */
export type VolumeChange =
  | { op: "delete"; path: string }
  | { op: "mkdir"; path: string; mtimeMs: number }
  | { op: "put"; path: string; content: ChangeContent; size: number; mtimeMs: number };

/**
 * What a mount needs from the volume store: read any committed version, find the latest, commit changes on top
 * of a base. Versions are immutable, so everything a mount caches for one version stays true.
 */
export interface VolumeSource {
  /** The latest committed version. */
  latest(): Promise<VolumeVersion>;
  /** The entry at `path` in `version`, or undefined when there is none. */
  stat(version: VolumeVersion, path: string): Promise<VolumeEntry | undefined>;
  /** The direct children of directory `dir`, or undefined when `dir` is not a directory of `version`. */
  list(version: VolumeVersion, dir: string): Promise<VolumeEntry[] | undefined>;
  /** Streams a file's bytes, only those of `range` when given. Rejects when there is no such file. */
  read(version: VolumeVersion, path: string, range?: ByteRange): Promise<Readable>;
  /**
   * Applies `changes` on top of `base` and makes the result the latest version (changes by others since `base`
   * to other paths are kept: the store merges; the same path: last commit wins). Resolves with the new version;
   * on failure nothing is committed.
   */
  commit(base: VolumeVersion, changes: VolumeChange[]): Promise<VolumeVersion>;
}

/** Normalizes a volume path: absolute, no `.`/`..`/empty segments, no trailing slash (except "/"). */
export function normalizeVolumePath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      parts.pop();
      continue;
    }
    parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/** The parent directory of a normalized path ("/" for "/"). */
export function parentPath(path: string): string {
  const index = path.lastIndexOf("/");
  return index <= 0 ? "/" : path.slice(0, index);
}

/** The last segment of a normalized path ("" for "/"). */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Whether `path` is `dir` itself or lies below it. */
export function isAtOrBelow(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}
