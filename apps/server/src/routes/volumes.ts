import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { BlobStore } from "@skiff/blob";
import {
  VOLUME_CHUNK_BYTES,
  VOLUME_VERSION_HEADER,
  type VolumeEntryView,
  volumePath,
  volumeRoutes,
} from "@skiff/protocol";
import type { Principal, Scope, Store, VolumeChange, VolumeEntry, VolumeRow } from "@skiff/store";
import type { Context } from "hono";
import { type Api, type AuthEnv, scopeOf, workspaceOf } from "../auth.js";
import { ApiError } from "../errors.js";
import { bodyOf, parseBody } from "./body.js";
import { BODY_LIMITS, declaredSize, tooLarge } from "./limits.js";
import { parseQuery } from "./query.js";
import { serve } from "./serve.js";

/** The most a file written through the API may hold. */
export const MAX_VOLUME_FILE_BYTES = 64 * 1024 ** 3;

/**
 * Volumes and their files (see protocol's volumeRoutes). A volume is found by name in the caller's
 * workspace and environment; another workspace's is "not found", worded as for a name that exists nowhere.
 * File content is chunks in the blob store, granted to the workspace that wrote them.
 */
export function serveVolumes(api: Api, deps: { store: Store; blobs: BlobStore }): void {
  const { store, blobs } = deps;

  /**
   * The volume a request names, if the caller may use it so: a container's token reaches only the volumes
   * its function mounts, and changes only those it mounts read-write.
   */
  const find = async (
    c: Context<AuthEnv>,
    access: "read" | "write" = "read",
    name = c.req.param("name") ?? "",
  ): Promise<VolumeRow> => {
    const scope = scopeOf(c);
    const volume = await store.volumes.find(scope, name);
    if (!volume) throw missingVolume(scope, name);
    const container = c.get("caller").container;
    if (!container) return volume;
    const mount = await store.volumes.mountOf(container.id, volume.id);
    if (!mount) {
      throw new ApiError(
        "FORBIDDEN",
        `a container's token reaches only the volumes its function mounts: add \`volumes: { "/path": Volume.fromName("${name}") }\` to the function's options`,
      );
    }
    if (access === "write" && mount.readOnly) {
      throw new ApiError(
        "FORBIDDEN",
        `volume "${name}" is mounted read-only in this container: mount it without .readOnly() to change it`,
      );
    }
    return volume;
  };

  serve(api, volumeRoutes.list, async (c) => {
    const volumes = await store.volumes.listVolumes(scopeOf(c));
    const container = c.get("caller").container;
    if (!container) return { volumes };
    // A container sees the volumes it mounts, no other.
    const mounted = await Promise.all(volumes.map((v) => store.volumes.mountOf(container.id, v.id)));
    return { volumes: volumes.filter((_, i) => mounted[i]) };
  });

  serve(api, volumeRoutes.create, async (c) => {
    const scope = scopeOf(c);
    const body = await parseBody(c.req.raw, volumeRoutes.create.body);
    // A container makes no volume: one it mounts was made at deploy, and it may use no other.
    if (c.get("caller").container) {
      if (!(await store.volumes.find(scope, body.name))) {
        throw new ApiError(
          "FORBIDDEN",
          `a container's token makes no volume: mount it with \`volumes: { "/path": Volume.fromName("${body.name}", { createIfMissing: true }) }\`, and the deploy makes it`,
        );
      }
      const volume = await find(c, "read", body.name);
      if (!body.ifMissing) {
        throw new ApiError("CONFLICT", `volume "${body.name}" already exists in environment "${scope.env}"`);
      }
      return { volume, created: false };
    }
    return store.volumes.create(scope, body.name, { ifMissing: body.ifMissing, author: authorOf(c) });
  });

  serve(api, volumeRoutes.get, async (c) => ({ volume: await find(c) }));

  serve(api, volumeRoutes.delete, async (c) => {
    const scope = scopeOf(c);
    const name = c.req.param("name");
    const { force } = parseQuery(c, volumeRoutes.delete.query);
    if (!(await store.volumes.delete(scope, name, { force: flag(force) }))) {
      throw new ApiError("NOT_FOUND", `no volume "${name}" in environment "${scope.env}": see \`skiff volume list\``);
    }
    return { ok: true };
  });

  serve(api, volumeRoutes.history, async (c) => {
    const volume = await find(c);
    const query = parseQuery(c, volumeRoutes.history.query);
    const versions = await store.volumes.history(volume.id, {
      limit: Math.min(Number(query.limit ?? 100), 1000),
      ...(query.before ? { before: Number(query.before) } : {}),
    });
    return { volume, versions };
  });

  serve(api, volumeRoutes.rollback, async (c) => {
    const volume = await find(c, "write");
    const { version } = await parseBody(c.req.raw, volumeRoutes.rollback.body);
    return store.volumes.rollback(volume, version, { author: authorOf(c) });
  });

  serve(api, volumeRoutes.listFiles, async (c) => {
    const volume = await find(c);
    const query = parseQuery(c, volumeRoutes.listFiles.query);
    const version = versionOf(volume, query.version);
    const path = checkedPath(query.path ?? "");
    const withChunks = flag(query.chunks);
    const at = await store.volumes.stat(volume, path, version);
    if (!at) throw missingPath(volume, path);
    if (at.type === "file") return { version, entries: [view(at, withChunks)] };
    const page = await store.volumes.list(volume, path, {
      version,
      recursive: flag(query.recursive),
      ...(query.after ? { after: query.after } : {}),
      ...(query.limit ? { limit: Number(query.limit) } : {}),
    });
    return {
      version,
      entries: page.entries.map((entry) => view(entry, withChunks)),
      ...(page.next ? { next: page.next } : {}),
    };
  });

  /** The entry a request's `path` and `version` name in its volume; 404 when nothing is there. */
  const entryOf = async (c: Context<AuthEnv>, query: { path: string; version?: string | undefined }) => {
    const volume = await find(c);
    const version = versionOf(volume, query.version);
    const path = checkedPath(query.path);
    const entry = await store.volumes.stat(volume, path, version);
    if (!entry) throw missingPath(volume, path);
    return { volume, version, path, entry };
  };

  serve(api, volumeRoutes.stat, async (c) => {
    const { version, entry } = await entryOf(c, parseQuery(c, volumeRoutes.stat.query));
    return { version, entry: view(entry, true) };
  });

  serve(api, volumeRoutes.read, async (c) => {
    const { volume, version, path, entry } = await entryOf(c, parseQuery(c, volumeRoutes.read.query));
    if (entry.type === "dir") {
      throw new ApiError("BAD_REQUEST", `"${path}" is a directory of volume "${volume.name}": list it instead`);
    }
    const range = rangeOf(c.req.header("range"), entry.size);
    const headers: Record<string, string> = {
      "content-type": "application/octet-stream",
      "accept-ranges": "bytes",
      [VOLUME_VERSION_HEADER]: String(version),
      "last-modified": new Date(entry.mtimeMs).toUTCString(),
    };
    if (range === "unsatisfiable") {
      return c.body(null, 416, { ...headers, "content-range": `bytes */${entry.size}` });
    }
    const [start, end] = range ?? [0, entry.size];
    headers["content-length"] = String(end - start);
    if (range) headers["content-range"] = `bytes ${start}-${end - 1}/${entry.size}`;
    const status = range ? 206 : 200;
    // Hono answers a HEAD with the GET route: it must not read the chunks.
    if (c.req.method === "HEAD") return c.body(null, status, headers);
    const stream = Readable.from(readRange(blobs, entry, start, end), { objectMode: false });
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!outgoing) return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { status, headers });
    outgoing.writeHead(status, headers);
    // A chunk missing or changed on disk cuts the answer short of its Content-Length: the reader sees it.
    pipeline(stream, outgoing).catch(() => {});
    return RESPONSE_ALREADY_SENT;
  });

  // The body is cut in chunks as it arrives: each goes to the blob store (once: a chunk it holds already is
  // not written again), then the file's row is committed. At most two chunks are in memory at once.
  serve(api, volumeRoutes.write, async (c) => {
    const volume = await find(c, "write");
    const query = parseQuery(c, volumeRoutes.write.query);
    const path = checkedPath(query.path);
    if (path === "") throw new ApiError("BAD_REQUEST", "give the file's path in the volume (?path=)");
    const current = await store.volumes.stat(volume, path);
    if (current?.type === "dir") {
      throw new ApiError(
        "CONFLICT",
        `"${path}" is a directory of volume "${volume.name}": write to a path inside it, or remove it first`,
      );
    }
    const size = declaredSize(c.req.raw, MAX_VOLUME_FILE_BYTES);
    // Refused before a byte is stored when the declared size cannot fit (the commit checks again).
    if (size !== undefined) await store.volumes.checkRoom(volume, size - (current?.size ?? 0));
    const written = await chunkInto(blobs, bodyOf(c), size);
    await store.blobs.grant(workspaceOf(c.get("caller")), written.chunks);
    const mtimeMs = query.mtime ? Number(query.mtime) : Date.now();
    const change: VolumeChange = {
      path,
      type: "file",
      size: written.size,
      mode: query.mode ? Number.parseInt(query.mode, 8) : 0o644,
      mtimeMs,
      chunks: written.chunks,
    };
    const committed = await store.volumes.commit(volume, [change], {
      author: authorOf(c),
      note: `put ${path} (${written.size} bytes)`,
    });
    return {
      ...committed,
      storedBytes: written.storedBytes,
      entry: view({ ...change, version: committed.version }, false),
    };
  });

  serve(api, volumeRoutes.remove, async (c) => {
    const volume = await find(c, "write");
    const query = parseQuery(c, volumeRoutes.remove.query);
    const path = checkedPath(query.path);
    const recursive = flag(query.recursive);
    const entry = await store.volumes.stat(volume, path);
    if (!entry) throw missingPath(volume, path);
    if (entry.type === "dir" && !recursive) {
      throw new ApiError(
        "BAD_REQUEST",
        `"${path || "/"}" is a directory of volume "${volume.name}": remove it with everything in it with recursive (\`skiff volume rm -r\`)`,
      );
    }
    return store.volumes.commit(volume, [{ path, deleted: true }], {
      author: authorOf(c),
      note: `rm ${recursive ? "-r " : ""}${path || "/"}`,
    });
  });

  serve(api, volumeRoutes.copy, async (c) => {
    const volume = await find(c, "write");
    const { from, to } = await parseBody(c.req.raw, volumeRoutes.copy.body);
    const [source, target] = [checkedPath(from), checkedPath(to)];
    return store.volumes.copy(volume, source, target, { author: authorOf(c), note: `cp ${source} ${target}` });
  });

  serve(api, volumeRoutes.commit, async (c) => {
    const volume = await find(c, "write");
    const body = await parseBody(c.req.raw, volumeRoutes.commit.body, BODY_LIMITS.manifest);
    const now = Date.now();
    const changes: VolumeChange[] = body.changes.map((change) =>
      "deleted" in change ? change : { ...change, mtimeMs: change.mtimeMs ?? now },
    );
    // Chunks are blobs the caller's workspace put: a commit cannot name another workspace's bytes.
    const chunks = changes.flatMap((change) => ("chunks" in change ? change.chunks : []));
    const foreign = await store.blobs.notOwned(workspaceOf(c.get("caller")), chunks);
    if (foreign.length > 0) {
      throw new ApiError(
        "BAD_REQUEST",
        `${foreign.length} chunk(s) are not uploaded (${foreign[0]}…): PUT each to /v1/blobs/SHA256 first`,
      );
    }
    return store.volumes.commit(volume, changes, {
      author: authorOf(c),
      note: body.note ?? `commit of ${changes.length} change${changes.length === 1 ? "" : "s"}`,
      ...(body.baseVersion ? { baseVersion: body.baseVersion } : {}),
    });
  });
}

function missingVolume(scope: Scope, name: string): ApiError {
  return new ApiError(
    "NOT_FOUND",
    `no volume "${name}" in environment "${scope.env}": create it with \`skiff volume create ${name} --env ${scope.env}\` (or Volume.fromName("${name}", { createIfMissing: true }))`,
  );
}

function missingPath(volume: VolumeRow, path: string): ApiError {
  return new ApiError(
    "NOT_FOUND",
    `volume "${volume.name}" has no "${path}": see \`skiff volume ls ${volume.name} --env ${volume.env}\``,
  );
}

function checkedPath(raw: string): string {
  try {
    return volumePath(raw).path;
  } catch (error) {
    throw new ApiError("BAD_REQUEST", (error as Error).message);
  }
}

function versionOf(volume: VolumeRow, raw: string | undefined): number {
  if (raw === undefined) return volume.version;
  const version = Number(raw);
  if (version > volume.version) {
    throw new ApiError(
      "NOT_FOUND",
      `volume "${volume.name}" has no version ${version} (its latest is ${volume.version}): see \`skiff volume history ${volume.name}\``,
    );
  }
  return version;
}

const flag = (value: string | undefined) => value === "true" || value === "1";

function view(entry: VolumeEntry, withChunks: boolean): VolumeEntryView {
  const { chunks, ...rest } = entry;
  return withChunks && entry.type === "file" ? { ...rest, chunks } : rest;
}

/**
 * Who makes a version: a container, or a token, and the client it used when it says (`x-skiff-client`:
 * "cli", "sdk").
 */
function authorOf(c: Context<AuthEnv>): string {
  const caller: Principal = c.get("caller");
  const client = c.req.header("x-skiff-client")?.match(/^[a-z][a-z0-9-]{0,15}$/)?.[0];
  const who = caller.container
    ? `${caller.container.build ? "image build" : "container"} ${caller.container.id}`
    : `token ${caller.tokenId}`;
  return client ? `${who} (${client})` : who;
}

/**
 * The byte range `[start, end)` a `Range: bytes=…` header asks of a file of `size` bytes: undefined for the
 * whole file (no header, or one this server does not take: several ranges, another unit), or
 * "unsatisfiable".
 */
export function rangeOf(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  const match = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!match) return undefined;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    if (suffix === 0) return "unsatisfiable";
    return [Math.max(0, size - suffix), size];
  }
  const start = Number(first);
  if (start >= size) return "unsatisfiable";
  const end = last === "" ? size : Math.min(Number(last) + 1, size);
  if (end <= start) return "unsatisfiable";
  return [start, end];
}

/** The bytes `[start, end)` of a file, chunk by chunk from the blob store. */
async function* readRange(blobs: BlobStore, entry: VolumeEntry, start: number, end: number): AsyncGenerator<Buffer> {
  if (end <= start) return;
  const first = Math.floor(start / VOLUME_CHUNK_BYTES);
  const last = Math.floor((end - 1) / VOLUME_CHUNK_BYTES);
  for (let index = first; index <= last; index++) {
    const hash = entry.chunks[index]!;
    const chunkStart = index * VOLUME_CHUNK_BYTES;
    const expected = Math.min(VOLUME_CHUNK_BYTES, entry.size - chunkStart);
    const reader = await blobs.getStream(hash);
    if (!reader) throw new Error(`chunk ${index} of "${entry.path}" (${hash}) is missing from the blob store`);
    if (reader.size !== expected) {
      reader.stream.destroy();
      throw new Error(`chunk ${index} of "${entry.path}" has ${reader.size} bytes, not ${expected}`);
    }
    // Offsets within this chunk.
    let at = 0;
    const from = Math.max(start - chunkStart, 0);
    const to = Math.min(end - chunkStart, expected);
    try {
      for await (const piece of reader.stream as AsyncIterable<Buffer>) {
        const pieceEnd = at + piece.length;
        if (pieceEnd > from && at < to) yield piece.subarray(Math.max(from - at, 0), Math.min(to - at, piece.length));
        at = pieceEnd;
        // A range that ends inside the chunk stops reading it there.
        if (at >= to) break;
      }
    } finally {
      reader.stream.destroy();
    }
  }
}

/**
 * Cuts `source` in VOLUME_CHUNK_BYTES chunks and stores each in the blob store as it fills, one storing
 * while the next fills. Answers the chunks' hashes, the size, and how many bytes were new to the store.
 */
async function chunkInto(
  blobs: BlobStore,
  source: AsyncIterable<Uint8Array>,
  declared: number | undefined,
): Promise<{ chunks: string[]; size: number; storedBytes: number }> {
  const chunks: string[] = [];
  let size = 0;
  let storedBytes = 0;
  let storing: Promise<void> = Promise.resolve();
  const spare: Buffer[] = [];
  let buffer: Buffer = Buffer.allocUnsafe(VOLUME_CHUNK_BYTES);
  let filled = 0;
  const flush = async () => {
    const full = buffer;
    const length = filled;
    const index = chunks.length;
    chunks.push("");
    await storing; // one chunk stores at a time; its buffer is then free for the next
    buffer = spare.pop() ?? Buffer.allocUnsafe(VOLUME_CHUNK_BYTES);
    filled = 0;
    storing = (async () => {
      const bytes = full.subarray(0, length);
      const hash = createHash("sha256").update(bytes).digest("hex");
      chunks[index] = hash;
      if (!(await blobs.has(hash))) {
        await blobs.putStream(once(bytes), { hash, size: length, maxBytes: VOLUME_CHUNK_BYTES });
        storedBytes += length;
      }
      spare.push(full);
    })();
    // A failure surfaces at the next flush or at the end; keep it from being unhandled meanwhile.
    storing.catch(() => {});
  };
  for await (const piece of source) {
    size += piece.length;
    if (size > (declared ?? MAX_VOLUME_FILE_BYTES)) throw tooLarge(declared ?? MAX_VOLUME_FILE_BYTES, "the file");
    let offset = 0;
    while (offset < piece.length) {
      const take = Math.min(piece.length - offset, VOLUME_CHUNK_BYTES - filled);
      buffer.set(piece.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === VOLUME_CHUNK_BYTES) await flush();
    }
  }
  if (filled > 0) await flush();
  await storing;
  if (declared !== undefined && size !== declared) {
    throw new ApiError("BAD_REQUEST", `the body has ${size} bytes, not the ${declared} its Content-Length declared`);
  }
  return { chunks, size, storedBytes };
}

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}
