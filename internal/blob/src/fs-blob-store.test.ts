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
