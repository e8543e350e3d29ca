import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { VOLUME_CHUNK_BYTES } from "@skiff/protocol";
import { type VolumeChangeInput, type VolumeEntryView, volumeRoutes } from "@skiff/protocol/http/volumes";
import { SkiffError, Volume } from "skiff";
import type { Client } from "skiff/plumbing";
import type { ByteRange, VolumeChange, VolumeEntry, VolumeSource, VolumeVersion } from "./volume-source.js";

/**
 * A volume as the server's volume API holds it (docs/volumes.md), for a container's mount: reads by version,
 * and a commit that uploads each new file's chunks as blobs (once: chunks the server already holds for the
 * workspace are not sent) and then posts the change list. `client` carries the container's own token, so a
 * mount reaches what the container's code could, and nothing more.
 */
export class ApiVolumeSource implements VolumeSource {
  private readonly volume: Volume;
  private readonly target: { params: { name: string }; env: { env: string } };

  constructor(
    private readonly client: Client,
    name: string,
    env: string,
  ) {
    this.volume = Volume.withClient(client, name, { environment: env });
    this.target = { params: { name }, env: { env } };
  }

  async latest(): Promise<VolumeVersion> {
    const { volume } = await this.client.call(volumeRoutes.get, { params: this.target.params, query: this.target.env });
    return String(volume.version);
  }

  async stat(version: VolumeVersion, path: string): Promise<MountEntry | undefined> {
    const query = { ...this.target.env, path: relative(path), version };
    const found = await notFoundAsUndefined(this.client.call(volumeRoutes.stat, { params: this.target.params, query }));
    return found && toEntry(found.entry);
  }

  async list(version: VolumeVersion, dir: string): Promise<VolumeEntry[] | undefined> {
    const path = relative(dir);
    const entries: VolumeEntry[] = [];
    let after: string | undefined;
    do {
      const query = { ...this.target.env, path, version, chunks: "1" as const, ...(after ? { after } : {}) };
      const page = await notFoundAsUndefined(
        this.client.call(volumeRoutes.listFiles, { params: this.target.params, query }),
      );
      if (!page) return undefined;
      // A file's listing is the file itself: not a directory.
      const only = page.entries[0];
      if (page.entries.length === 1 && only?.type === "file" && only.path === path) return undefined;
      entries.push(...page.entries.map(toEntry));
      after = page.next;
    } while (after);
    return entries;
  }

  async read(version: VolumeVersion, path: string, range?: ByteRange): Promise<Readable> {
    const part = range ? { start: range.offset, end: range.offset + range.length } : {};
    const stream = this.volume.readStream(relative(path), { version: Number(version), ...part });
    return Readable.fromWeb(stream as WebReadableStream<Uint8Array>);
  }

  async commit(base: VolumeVersion, changes: VolumeChange[]): Promise<VolumeVersion> {
    const inputs: VolumeChangeInput[] = [];
    for (const change of changes) inputs.push(await this.inputOf(change));
    const committed = await this.client.call(volumeRoutes.commit, {
      params: this.target.params,
      query: this.target.env,
      body: { baseVersion: Number(base), changes: inputs, note: "committed by a container's mount" },
    });
    return String(committed.version);
  }

  /** A change as the commit route takes it: a new file's bytes uploaded as chunks first. */
  private async inputOf(change: VolumeChange): Promise<VolumeChangeInput> {
    const path = relative(change.path);
    if (change.op === "delete") return { path, deleted: true };
    if (change.op === "mkdir") return { path, type: "dir", mtimeMs: change.mtimeMs };
    const { content } = change;
    if ("copyOf" in content) {
      const source = await this.stat(content.copyOf.version, content.copyOf.path);
      if (source?.type !== "file" || !source.chunks) {
        throw new SkiffError(
          "NOT_FOUND",
          `${content.copyOf.path} is no longer a file of version ${content.copyOf.version}`,
        );
      }
      return { path, type: "file", size: source.size, mtimeMs: change.mtimeMs, chunks: source.chunks };
    }
    return { path, type: "file", size: change.size, mtimeMs: change.mtimeMs, chunks: await this.upload(content.file) };
  }

  /** Uploads a file as VOLUME_CHUNK_BYTES chunks, one in memory at a time; answers their sha256s in order. */
  private async upload(file: string): Promise<string[]> {
    const chunks: string[] = [];
    const handle = await open(file, "r");
    try {
      const buffer = Buffer.alloc(VOLUME_CHUNK_BYTES);
      for (;;) {
        let filled = 0;
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, null);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        if (filled === 0) break;
        chunks.push(await this.client.putBlob(buffer.subarray(0, filled)));
        if (filled < buffer.length) break;
      }
    } finally {
      await handle.close();
    }
    return chunks;
  }
}

/** A volume entry with its chunks, as a mount sees it: an absolute path, and a tag of its content. */
type MountEntry = VolumeEntry & { chunks?: string[] };

function toEntry(entry: VolumeEntryView): MountEntry {
  // Equal chunk lists mean equal bytes; a directory's tag only needs to be stable.
  const etag =
    entry.type === "dir"
      ? "dir"
      : createHash("sha256")
          .update((entry.chunks ?? []).join(","))
          .digest("hex");
  return {
    path: `/${entry.path}`,
    type: entry.type,
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    etag,
    ...(entry.chunks ? { chunks: entry.chunks } : {}),
  };
}

/** A mount's absolute path ("/a/b") as the volume API names it ("a/b"; "" for the root). */
function relative(path: string): string {
  return path.replace(/^\/+/, "");
}

/** The call's answer, or undefined where the server says there is no such thing. */
async function notFoundAsUndefined<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof SkiffError && error.code === "NOT_FOUND") return undefined;
    throw error;
  }
}
