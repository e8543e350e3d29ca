/**
 * A volume file's content is cut in chunks of this many bytes, each a blob named by its sha256: every chunk
 * but the last holds exactly this much, so an offset finds its chunk by division, and identical chunks
 * (of one file or of many, of one volume or of several) are stored once.
 */
export const VOLUME_CHUNK_BYTES = 8 * 1024 * 1024;

/** The longest path a volume takes, in characters, and the longest name of one of its parts. */
export const MAX_VOLUME_PATH = 4096;
const MAX_PATH_PART = 255;

/** A path inside a volume, normalized: `path` is `dir/name`; the root is `{ path: "", dir: "", name: "" }`. */
export interface VolumePath {
  path: string;
  dir: string;
  name: string;
}

/**
 * Normalizes a path inside a volume: leading, trailing and doubled slashes and `.` parts go, so `/a//b/`
 * and `a/./b` are both `a/b`. Throws a RangeError for `..`, a NUL byte, or a path too long.
 * @example volumePath("/models/llama/") // { path: "models/llama", dir: "models", name: "llama" }
 */
export function volumePath(raw: string): VolumePath {
  if (raw.includes("\0")) throw new RangeError("a volume path cannot hold a NUL byte");
  if (raw.length > MAX_VOLUME_PATH) throw new RangeError(`a volume path has at most ${MAX_VOLUME_PATH} characters`);
  const parts = raw.split("/").filter((part) => part !== "" && part !== ".");
  for (const part of parts) {
    if (part === "..") throw new RangeError(`"${raw}": a volume path cannot go up with ".."`);
    if (part.length > MAX_PATH_PART)
      throw new RangeError(`"${raw}": a path part has at most ${MAX_PATH_PART} characters`);
  }
  const name = parts.pop() ?? "";
  const dir = parts.join("/");
  return { path: dir ? `${dir}/${name}` : name, dir, name };
}

/** The directories above a normalized path, outermost first: `a/b/c` → `["a", "a/b"]`. */
export function volumeAncestors(path: string): string[] {
  const parts = path.split("/");
  parts.pop();
  return parts.map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** How many chunks a file of `size` bytes has. */
export function volumeChunkCount(size: number): number {
  return Math.ceil(size / VOLUME_CHUNK_BYTES);
}
