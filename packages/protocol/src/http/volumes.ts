import { z } from "zod";
import { route } from "./route.js";
import { Done, Instant, Sha256 } from "./wire.js";

/** A volume as listed: its latest version. */
export const VolumeView = z.object({
  name: z.string(),
  env: z.string(),
  version: z.number().int(),
  /** What its latest version's files hold (what counts against the workspace's quota). */
  bytes: z.number().default(0),
  createdAt: Instant,
});
export type VolumeView = z.output<typeof VolumeView>;

/** A file or directory of a volume. `chunks` (the sha256 of each 8 MiB piece) come only when asked for. */
export const VolumeEntryView = z.object({
  path: z.string(),
  type: z.enum(["file", "dir"]),
  size: z.number(),
  mode: z.number().int(),
  mtimeMs: z.number(),
  /** The version that last wrote it. */
  version: z.number().int(),
  chunks: z.array(Sha256).optional(),
});
export type VolumeEntryView = z.output<typeof VolumeEntryView>;

/** A version of a volume: who made it and what it did. */
export const VolumeVersionView = z.object({
  version: z.number().int(),
  createdAt: Instant,
  author: z.string(),
  note: z.string(),
  changes: z.number().int(),
  baseVersion: z.number().int().nullable(),
});
export type VolumeVersionView = z.output<typeof VolumeVersionView>;

const Mode = z.number().int().min(0).max(0o7777);
const Mtime = z.number().finite().nonnegative();

/**
 * One change of a commit: a file's content as chunks already uploaded as blobs (`PUT /v1/blobs/SHA256`),
 * every chunk but the last exactly VOLUME_CHUNK_BYTES; a directory; or a path deleted with all below it.
 */
export const VolumeChangeInput = z.union([
  z.object({
    path: z.string(),
    type: z.literal("file"),
    size: z.number().int().nonnegative(),
    mode: Mode.default(0o644),
    mtimeMs: Mtime.optional(),
    chunks: z.array(Sha256),
  }),
  z.object({ path: z.string(), type: z.literal("dir"), mode: Mode.default(0o755), mtimeMs: Mtime.optional() }),
  z.object({ path: z.string(), deleted: z.literal(true) }),
]);
export type VolumeChangeInput = z.input<typeof VolumeChangeInput>;

/** What a change of a volume answers: the version it made (the latest, when nothing changed). */
export const VolumeCommitted = z.object({
  version: z.number().int(),
  /** The latest version before this change. */
  previous: z.number().int(),
  /** Paths written (parent directories made, tombstones of what a delete took included). */
  changed: z.number().int(),
});
export type VolumeCommitted = z.output<typeof VolumeCommitted>;

/** `?env=` on every volume route: the environment the volume lives in (`main`, or a container's own). */
const Env = { env: z.string().optional() };
/** A version to read (`?version=`): the latest by default. */
const Version = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, "a version is a positive whole number")
  .optional();
const Flag = z.enum(["true", "false", "1", "0"]).optional();

/**
 * Volumes of an environment and their files. Paths are relative to the volume's root (a leading `/` is
 * ignored) and travel as `?path=`. Every change makes a version; reads take the latest unless `?version=`
 * names another. File bodies stream both ways: a write is cut in 8 MiB chunks as it arrives, and a read
 * honours `Range: bytes=…`.
 */
export const volumeRoutes = {
  list: route({
    method: "GET",
    path: "/v1/volumes",
    query: z.object(Env),
    response: z.object({ volumes: z.array(VolumeView) }),
  }),
  /** Creates a volume; with `ifMissing`, answers the one that exists instead of a CONFLICT. */
  create: route({
    method: "POST",
    path: "/v1/volumes",
    query: z.object(Env),
    body: z.object({ name: z.string(), ifMissing: z.boolean().default(false) }),
    response: z.object({ volume: VolumeView, created: z.boolean() }),
  }),
  get: route({
    method: "GET",
    path: "/v1/volumes/:name",
    query: z.object(Env),
    response: z.object({ volume: VolumeView }),
  }),
  /** Deletes a volume with its versions; its chunks stay in the blob store. */
  delete: route({
    method: "DELETE",
    path: "/v1/volumes/:name",
    /** `force`: delete it even while running containers mount it (their mounts then fail). */
    query: z.object({ ...Env, force: Flag }),
    response: Done,
  }),
  history: route({
    method: "GET",
    path: "/v1/volumes/:name/history",
    query: z.object({ ...Env, limit: z.string().regex(/^\d+$/).optional(), before: Version }),
    response: z.object({ volume: VolumeView, versions: z.array(VolumeVersionView) }),
  }),
  /** A new version with the files of an earlier one. */
  rollback: route({
    method: "POST",
    path: "/v1/volumes/:name/rollback",
    query: z.object(Env),
    body: z.object({ version: z.number().int().positive() }),
    response: VolumeCommitted,
  }),
  /**
   * A directory's entries at a version, by name (recursive: everything below, by directory then name), a
   * page at a time: pass the answer's `next` as `after` for the next page. `chunks=true` adds each file's
   * chunks (what a worker needs to read files from the blob store itself).
   */
  listFiles: route({
    method: "GET",
    path: "/v1/volumes/:name/files",
    query: z.object({
      ...Env,
      path: z.string().optional(),
      version: Version,
      recursive: Flag,
      chunks: Flag,
      after: z.string().optional(),
      limit: z.string().regex(/^\d+$/).optional(),
    }),
    response: z.object({
      version: z.number().int(),
      entries: z.array(VolumeEntryView),
      next: z.string().optional(),
    }),
  }),
  /** One path's entry with its chunks (404 when nothing is there). */
  stat: route({
    method: "GET",
    path: "/v1/volumes/:name/stat",
    query: z.object({ ...Env, path: z.string(), version: Version }),
    response: z.object({ version: z.number().int(), entry: VolumeEntryView }),
  }),
  /** A file's bytes (`Range: bytes=START-END` for a part: 206), with its size and the version read. */
  read: route({
    method: "GET",
    path: "/v1/volumes/:name/file",
    query: z.object({ ...Env, path: z.string(), version: Version }),
    response: "bytes",
  }),
  /** Writes a file from the body as it streams (`mode` octal, `mtime` ms since the epoch). */
  write: route({
    method: "PUT",
    path: "/v1/volumes/:name/file",
    query: z.object({
      ...Env,
      path: z.string(),
      mode: z
        .string()
        .regex(/^[0-7]{1,4}$/)
        .optional(),
      mtime: z.string().regex(/^\d+$/).optional(),
    }),
    body: "bytes",
    response: VolumeCommitted.extend({
      entry: VolumeEntryView,
      /** Bytes of chunks the blob store did not hold yet; the rest were there already. */
      storedBytes: z.number(),
    }),
  }),
  /** Removes a path; a directory only with `recursive=true`. */
  remove: route({
    method: "DELETE",
    path: "/v1/volumes/:name/file",
    query: z.object({ ...Env, path: z.string(), recursive: Flag }),
    response: VolumeCommitted,
  }),
  /** Copies a file or a directory within the volume (rows only: chunks are shared). */
  copy: route({
    method: "POST",
    path: "/v1/volumes/:name/copy",
    query: z.object(Env),
    body: z.object({ from: z.string(), to: z.string() }),
    response: VolumeCommitted,
  }),
  /**
   * Changes made elsewhere (a mounted volume), applied in order onto the latest version as one new one:
   * commits made from the same base merge (different paths both land, the same path is the last
   * commit's, deletes propagate). `baseVersion` is the version the changes were made from.
   */
  commit: route({
    method: "POST",
    path: "/v1/volumes/:name/commit",
    query: z.object(Env),
    body: z.object({
      baseVersion: z.number().int().positive().optional(),
      changes: z.array(VolumeChangeInput),
      note: z.string().max(200).optional(),
    }),
    response: VolumeCommitted,
  }),
};

/** The header a read answers with: the version it read. */
export const VOLUME_VERSION_HEADER = "x-skiff-volume-version";
