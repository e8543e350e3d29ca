import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import {
  type ByteRange,
  isAtOrBelow,
  normalizeVolumePath,
  parentPath,
  type VolumeChange,
  type VolumeEntry,
  type VolumeSource,
  type VolumeVersion,
} from "./volume-source.js";

/** Bytes of a generated file: any range on demand, so a test volume can hold a 1 GiB file in no memory. */
export type ContentGenerator = (offset: number, length: number) => Buffer;

type Node =
  | { type: "dir"; mtimeMs: number; etag: string }
  | { type: "file"; mtimeMs: number; etag: string; size: number; bytes: Buffer | ContentGenerator };

const PATTERN_PERIOD = 251;
const PATTERN_CHUNK = 1 << 20;
const PATTERN = Buffer.from(Array.from({ length: PATTERN_CHUNK + PATTERN_PERIOD }, (_, i) => i % PATTERN_PERIOD));

/** Byte `i` of a `patternFile` is `i % 251`: any range can be made, and checked, without the whole file. */
export function patternBytes(offset: number, length: number): Buffer {
  const parts: Buffer[] = [];
  for (let done = 0; done < length; ) {
    const take = Math.min(PATTERN_CHUNK, length - done);
    const start = (offset + done) % PATTERN_PERIOD;
    parts.push(PATTERN.subarray(start, start + take));
    done += take;
  }
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/** What a test seeds a volume with: file contents (strings, bytes or a generated size) by path. */
export type MemoryVolumeSeed = Record<string, string | Buffer | { generated: number }>;

const STREAM_PIECE = 256 * 1024;

/**
 * A VolumeSource held in memory, for tests and local experiments. It counts the bytes its reads hand out, so a
 * test can check that reading a range of a large file fetched about that range.
 */
export class MemoryVolumeSource implements VolumeSource {
  private readonly versions = new Map<VolumeVersion, Map<string, Node>>();
  private head: VolumeVersion = "v0";
  private etags = 0;
  /** Bytes handed out by `read` streams so far. */
  bytesRead = 0;
  /** Every `read` call: path and range. */
  readonly reads: { path: string; offset: number; length: number }[] = [];
  /** Every commit's changes, in order. */
  readonly commits: VolumeChange[][] = [];

  constructor(seed: MemoryVolumeSeed = {}, mtimeMs = Date.now()) {
    const nodes = new Map<string, Node>([["/", this.dir(mtimeMs)]]);
    for (const [path, content] of Object.entries(seed)) {
      const node: Node =
        typeof content === "object" && "generated" in content
          ? { type: "file", mtimeMs, etag: this.etag(), size: content.generated, bytes: patternBytes }
          : this.fileNode(Buffer.from(content), mtimeMs);
      this.place(nodes, normalizeVolumePath(path), node);
    }
    this.versions.set(this.head, nodes);
  }

  async latest(): Promise<VolumeVersion> {
    return this.head;
  }

  async stat(version: VolumeVersion, path: string): Promise<VolumeEntry | undefined> {
    const node = this.nodes(version).get(path);
    return node && toEntry(path, node);
  }

  async list(version: VolumeVersion, dir: string): Promise<VolumeEntry[] | undefined> {
    const nodes = this.nodes(version);
    if (nodes.get(dir)?.type !== "dir") return undefined;
    const entries: VolumeEntry[] = [];
    for (const [path, node] of nodes) {
      if (path !== "/" && parentPath(path) === dir) entries.push(toEntry(path, node));
    }
    return entries;
  }

  async read(version: VolumeVersion, path: string, range?: ByteRange): Promise<Readable> {
    const node = this.nodes(version).get(path);
    if (node?.type !== "file") throw Object.assign(new Error(`${path}: no such file`), { code: "ENOENT" });
    const offset = Math.min(range?.offset ?? 0, node.size);
    const end = range ? Math.min(node.size, offset + range.length) : node.size;
    this.reads.push({ path, offset, length: end - offset });
    const bytes = node.bytes;
    let position = offset;
    const counted = (take: number) => {
      this.bytesRead += take;
    };
    return new Readable({
      read() {
        if (position >= end) return void this.push(null);
        const take = Math.min(STREAM_PIECE, end - position);
        const chunk = typeof bytes === "function" ? bytes(position, take) : bytes.subarray(position, position + take);
        position += take;
        counted(take);
        this.push(chunk);
      },
    });
  }

  async commit(_base: VolumeVersion, changes: VolumeChange[]): Promise<VolumeVersion> {
    // Changes apply on top of the latest version, not the base: others' commits to other paths are kept.
    const nodes = new Map(this.nodes(this.head));
    for (const change of changes) {
      if (change.op === "delete") {
        for (const path of [...nodes.keys()]) if (path !== "/" && isAtOrBelow(path, change.path)) nodes.delete(path);
      } else if (change.op === "mkdir") {
        this.place(nodes, change.path, { ...this.dir(change.mtimeMs) });
      } else if ("file" in change.content) {
        this.place(nodes, change.path, this.fileNode(await readFile(change.content.file), change.mtimeMs));
      } else {
        const from = this.nodes(change.content.copyOf.version).get(change.content.copyOf.path);
        if (from?.type !== "file")
          throw new Error(`commit: ${change.content.copyOf.path} is not a file of its version`);
        this.place(nodes, change.path, { ...from, mtimeMs: change.mtimeMs });
      }
    }
    this.head = `v${this.versions.size}`;
    this.versions.set(this.head, nodes);
    this.commits.push(changes);
    return this.head;
  }

  private nodes(version: VolumeVersion): Map<string, Node> {
    const nodes = this.versions.get(version);
    if (!nodes) throw new Error(`unknown volume version ${version}`);
    return nodes;
  }

  private place(nodes: Map<string, Node>, path: string, node: Node): void {
    for (let dir = parentPath(path); !nodes.has(dir); dir = parentPath(dir)) nodes.set(dir, this.dir(node.mtimeMs));
    nodes.set(path, node);
  }

  private dir(mtimeMs: number): Node {
    return { type: "dir", mtimeMs, etag: this.etag() };
  }

  private fileNode(bytes: Buffer, mtimeMs: number): Node {
    return { type: "file", mtimeMs, etag: this.etag(), size: bytes.length, bytes };
  }

  private etag(): string {
    return `e${++this.etags}`;
  }
}

function toEntry(path: string, node: Node): VolumeEntry {
  return {
    path,
    type: node.type,
    size: node.type === "file" ? node.size : 0,
    mtimeMs: node.mtimeMs,
    etag: node.etag,
  };
}
