import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { describeBlobStoreConformance } from "./blob-store.conformance.js";
import { FsBlobStore } from "./fs-blob-store.js";

describeBlobStoreConformance("fs", async () => new FsBlobStore(await mkdtemp(join(tmpdir(), "skiff-blob-"))));

describe("fs blob store on disk", () => {
  it("leaves no temporary file behind a refused stream, and fails a read of bytes changed on disk", async () => {
    const root = await mkdtemp(join(tmpdir(), "skiff-blob-"));
    const store = new FsBlobStore(root);
    const hash = await store.put(new TextEncoder().encode("hello"));
    await expect(
      store.putStream(Readable.from([Buffer.from("nope")]), { hash: "1".repeat(64), maxBytes: 10 }),
    ).rejects.toThrow(/do not match/);
    expect(await readdir(join(root, "11"))).toEqual([]);
    await writeFile(store.pathOf(hash), "hellp");
    const reader = await store.getStream(hash);
    await expect(buffer(reader!.stream)).rejects.toThrow(/corrupt/);
  });
});

describe("fs blob store reading a changed blob", () => {
  it("never hands out the last piece of bytes that no longer match their hash", async () => {
    const store = new FsBlobStore(await mkdtemp(join(tmpdir(), "skiff-blob-")));
    const bytes = Buffer.alloc(3 * 1024 * 1024, 5);
    const hash = await store.put(bytes);
    bytes[bytes.length - 1] = 6;
    await writeFile(store.pathOf(hash), bytes);
    const reader = await store.getStream(hash);
    let received = 0;
    reader!.stream.on("data", (chunk: Buffer) => {
      received += chunk.length;
    });
    await expect(
      new Promise((resolve, reject) => reader!.stream.on("end", resolve).on("error", reject)),
    ).rejects.toThrow(/corrupt/);
    expect(received).toBeLessThan(bytes.length);
  });
});
