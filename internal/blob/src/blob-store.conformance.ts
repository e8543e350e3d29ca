import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import type { BlobStore } from "./blob-store.js";

const HELLO = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

/** Bytes as a stream of `chunk`-sized pieces, like a request body. */
function streamOf(bytes: Uint8Array, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < bytes.length; at += chunk) yield bytes.subarray(at, at + chunk);
    })(),
  );
}

/** What every BlobStore must do. */
export function describeBlobStoreConformance(name: string, make: () => Promise<BlobStore>) {
  describe(`blob store on ${name}`, () => {
    it("stores by content hash, idempotently", async () => {
      const store = await make();
      const bytes = new TextEncoder().encode("hello");
      const hash = await store.put(bytes);
      expect(hash).toBe(HELLO);
      expect(await store.put(bytes)).toBe(hash);
      expect(await store.has(hash)).toBe(true);
      expect(new TextDecoder().decode(await store.get(hash))).toBe("hello");
    });

    it("answers undefined for a missing blob and refuses a malformed hash", async () => {
      const store = await make();
      expect(await store.get("0".repeat(64))).toBeUndefined();
      expect(await store.getStream("0".repeat(64))).toBeUndefined();
      expect(await store.has("0".repeat(64))).toBe(false);
      await expect(store.get("../../etc/passwd")).rejects.toThrow(/sha256/);
      await expect(store.getStream("../../etc/passwd")).rejects.toThrow(/sha256/);
    });

    it("round-trips a 5 MiB blob", async () => {
      const store = await make();
      const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251);
      const hash = await store.put(big);
      expect((await store.get(hash))?.length).toBe(big.length);
    });

    it("stores a stream and reads it back as one, checked against its hash and size", async () => {
      const store = await make();
      const big = new Uint8Array(5 * 1024 * 1024 + 7).map((_, i) => (i * 7) % 253);
      const { sha256 } = await import("./blob-checks.js");
      const hash = sha256(big);
      expect(await store.putStream(streamOf(big), { hash, size: big.length, maxBytes: big.length })).toBe(hash);
      expect(await store.putStream(streamOf(big), { hash, maxBytes: big.length })).toBe(hash);
      const reader = await store.getStream(hash);
      expect(reader?.size).toBe(big.length);
      expect(Buffer.compare(await buffer(reader!.stream), Buffer.from(big))).toBe(0);
      expect(Buffer.compare(Buffer.from((await store.get(hash))!), Buffer.from(big))).toBe(0);
    });

    it("keeps nothing of a stream that is not what it claims to be", async () => {
      const store = await make();
      const hello = new TextEncoder().encode("hello");
      const wrong = new TextEncoder().encode("hellp");
      await expect(store.putStream(streamOf(wrong), { hash: HELLO, maxBytes: 100 })).rejects.toMatchObject({
        code: "BLOB_MISMATCH",
      });
      await expect(store.putStream(streamOf(hello), { hash: HELLO, size: 4, maxBytes: 100 })).rejects.toMatchObject({
        code: "BLOB_MISMATCH",
      });
      await expect(store.putStream(streamOf(hello), { hash: HELLO, size: 6, maxBytes: 100 })).rejects.toMatchObject({
        code: "BLOB_MISMATCH",
      });
      await expect(store.putStream(streamOf(hello), { hash: HELLO, maxBytes: 4 })).rejects.toMatchObject({
        code: "BLOB_TOO_LARGE",
      });
      await expect(store.putStream(streamOf(hello), { hash: HELLO, size: 5, maxBytes: 4 })).rejects.toMatchObject({
        code: "BLOB_TOO_LARGE",
      });
      expect(await store.has(HELLO)).toBe(false);
    });

    // A stream that names a stored blob is still checked: its sender is granted the blob once it is accepted.
    it("refuses a stream that names a blob already stored but is not its bytes", async () => {
      const store = await make();
      expect(await store.put(new TextEncoder().encode("hello"))).toBe(HELLO);
      const wrong = new TextEncoder().encode("hellp");
      await expect(store.putStream(streamOf(wrong), { hash: HELLO, maxBytes: 100 })).rejects.toMatchObject({
        code: "BLOB_MISMATCH",
      });
      expect(new TextDecoder().decode(await store.get(HELLO))).toBe("hello");
    });
  });
}
