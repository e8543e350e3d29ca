import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import { VOLUME_CHUNK_BYTES } from "@skiff/protocol";
import { openPglite, SecretBox, Store } from "@skiff/store";
import pino from "pino";
import { Volume } from "skiff";
import { Client } from "skiff/plumbing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningServer, startServer } from "../server.js";
import { rangeOf } from "./volumes.js";

const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** `size` bytes that differ from chunk to chunk (and from one `seed` to another), made as they are read. */
async function* pattern(size: number, seed: number, piece = 1 << 20): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < size; at += piece) {
    const bytes = new Uint8Array(Math.min(piece, size - at));
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (seed + Math.floor((at + i) / VOLUME_CHUNK_BYTES)) & 255;
    yield bytes;
  }
}
async function collect(source: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const pieces: Uint8Array[] = [];
  for await (const piece of source) pieces.push(piece);
  return Buffer.concat(pieces);
}

describe("volume routes", () => {
  let dir: string;
  let server: RunningServer;
  let client: Client;
  let credential: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-volumes-"));
    const store = new Store(await openPglite(), { box: await SecretBox.load({ keyFile: join(dir, "master.key") }) });
    server = await startServer({
      store,
      blobs: new FsBlobStore(join(dir, "blobs")),
      log: pino({ level: "silent" }),
      secrets: { store: store.secrets, keyFile: join(dir, "master.key") },
    });
    credential = (await server.tokens.create({ kind: "user", name: "t", workspace: "ws-local" })).credential;
    client = new Client({ serverUrl: server.url, token: credential, agent: "test" });
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const raw = (path: string, init: RequestInit = {}) =>
    fetch(new URL(path, server.url), {
      ...init,
      headers: { authorization: `Bearer ${credential}`, ...(init.headers as Record<string, string>) },
    });

  it("says how to create a volume that is not there, and creates one on first use when asked", async () => {
    const missing = Volume.withClient(client, "nosuch");
    await expect(missing.read("a")).rejects.toThrow(/skiff volume create nosuch --env main/);
    const made = Volume.withClient(client, "small", { createIfMissing: true });
    await made.write("/docs/readme.txt", "hello");
    expect(new TextDecoder().decode(await made.read("docs/readme.txt"))).toBe("hello");
    await expect(made.read("docs/other.txt")).rejects.toThrow(/has no "docs\/other.txt"/);
    await expect(made.read("docs")).rejects.toThrow(/is a directory/);
    const history = await made.history();
    expect(history.map((v) => v.note)).toEqual(["put docs/readme.txt (5 bytes)", "created"]);
    expect(history[0]!.author).toMatch(/^token tk-[0-9a-f]+ \(test\)$/);
  });

  it("answers ranges of a file across its chunks, and a HEAD without reading it", async () => {
    const volume = Volume.withClient(client, "ranges", { createIfMissing: true });
    const size = 2 * VOLUME_CHUNK_BYTES + 1000;
    await volume.write("r.bin", pattern(size, 7));
    const whole = await volume.read("r.bin");
    expect(whole.length).toBe(size);
    const [from, to] = [VOLUME_CHUNK_BYTES - 10, 2 * VOLUME_CHUNK_BYTES + 10];
    const part = await collect(volume.readStream("r.bin", { start: from, end: to }) as AsyncIterable<Uint8Array>);
    expect(sha(part)).toBe(sha(whole.subarray(from, to)));
    const suffix = await raw("/v1/volumes/ranges/file?path=r.bin", { headers: { range: "bytes=-5" } });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get("content-range")).toBe(`bytes ${size - 5}-${size - 1}/${size}`);
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(whole.subarray(size - 5));
    const beyond = await raw("/v1/volumes/ranges/file?path=r.bin", { headers: { range: `bytes=${size}-` } });
    expect(beyond.status).toBe(416);
    const head = await raw("/v1/volumes/ranges/file?path=r.bin", { method: "HEAD" });
    expect([head.status, head.headers.get("content-length"), head.headers.get("accept-ranges")]).toEqual([
      200,
      String(size),
      "bytes",
    ]);
    expect(rangeOf("bytes=0-0", 10)).toEqual([0, 1]);
    expect(rangeOf("bytes=5-100", 10)).toEqual([5, 10]);
    expect(rangeOf("bytes=1-2,4-5", 10)).toBeUndefined();
    expect(rangeOf("bytes=-0", 10)).toBe("unsatisfiable");
  });

  it("streams a write in chunks, storing a chunk it already holds once", async () => {
    const volume = Volume.withClient(client, "dedup", { createIfMissing: true });
    const size = 3 * VOLUME_CHUNK_BYTES + 3;
    const blobs = async () => (await readdir(join(dir, "blobs"), { recursive: true })).length;
    const first = await volume.write("one.bin", pattern(size, 1));
    expect(first.storedBytes).toBe(size);
    const before = await blobs();
    const second = await volume.write("two.bin", pattern(size, 1));
    expect(second.storedBytes).toBe(0);
    expect(await blobs()).toBe(before);
    const stat = await raw("/v1/volumes/dedup/stat?path=two.bin");
    const { entry } = (await stat.json()) as { entry: { chunks: string[] } };
    expect(entry.chunks).toHaveLength(4);
    expect(sha(await volume.read("two.bin"))).toBe(sha(await collect(pattern(size, 1))));
  });

  it("lists, removes, copies and reads earlier versions", async () => {
    const volume = Volume.withClient(client, "tree", { createIfMissing: true });
    for (const path of ["a/1.txt", "a/b/2.txt", "c.txt"]) await volume.write(path, path);
    const all: string[] = [];
    for await (const entry of volume.list("/", { recursive: true })) all.push(`${entry.type} ${entry.path}`);
    expect(all).toEqual(["dir a", "file c.txt", "file a/1.txt", "dir a/b", "file a/b/2.txt"]);
    await expect(volume.remove("a")).rejects.toThrow(/is a directory.*recursive/);
    await volume.copy("a", "z");
    const removed = await volume.remove("a", { recursive: true });
    const top: string[] = [];
    for await (const entry of volume.list("/")) top.push(entry.path);
    expect(top).toEqual(["c.txt", "z"]);
    expect(new TextDecoder().decode(await volume.read("z/b/2.txt"))).toBe("a/b/2.txt");
    expect(new TextDecoder().decode(await volume.read("a/b/2.txt", { version: removed.previous }))).toBe("a/b/2.txt");
    await volume.rollback(removed.previous);
    expect(new TextDecoder().decode(await volume.read("a/1.txt"))).toBe("a/1.txt");
    await expect(volume.commit()).rejects.toThrow(/mounted into a function/);
  });

  it("commits changes made elsewhere from chunks the workspace uploaded, and refuses others", async () => {
    const volume = await Volume.withClient(client, "commits", { createIfMissing: true }).hydrate();
    const bytes = new TextEncoder().encode("made elsewhere");
    const hash = await client.putBlob(bytes);
    const commit = (changes: unknown[]) =>
      raw("/v1/volumes/commits/commit", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ baseVersion: 1, changes }),
      });
    const ok = await commit([{ path: "x/e.txt", type: "file", size: bytes.length, chunks: [hash] }]);
    expect(await ok.json()).toEqual({ version: 2, previous: 1, changed: 2 });
    expect(new TextDecoder().decode(await volume.read("x/e.txt"))).toBe("made elsewhere");
    const foreign = await commit([{ path: "y", type: "file", size: 1, chunks: ["ab".repeat(32)] }]);
    expect(foreign.status).toBe(400);
    expect(await foreign.text()).toMatch(/not uploaded/);
    const miscount = await commit([{ path: "y", type: "file", size: VOLUME_CHUNK_BYTES + 1, chunks: [hash] }]);
    expect(miscount.status).toBe(400);
  });
});
