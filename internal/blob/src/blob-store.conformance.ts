import { describe, expect, it } from "vitest";
import type { BlobStore } from "./blob-store.js";

/** What every BlobStore must do. */
export function describeBlobStoreConformance(name: string, make: () => Promise<BlobStore>) {
  describe(`blob store on ${name}`, () => {
    it("stores by content hash, idempotently", async () => {
      const store = await make();
      const bytes = new TextEncoder().encode("hello");
      const hash = await store.put(bytes);
      expect(hash).toBe("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
      expect(await store.put(bytes)).toBe(hash);
      expect(await store.has(hash)).toBe(true);
      expect(new TextDecoder().decode(await store.get(hash))).toBe("hello");
    });

    it("answers undefined for a missing blob and refuses a malformed hash", async () => {
      const store = await make();
      expect(await store.get("0".repeat(64))).toBeUndefined();
      expect(await store.has("0".repeat(64))).toBe(false);
      await expect(store.get("../../etc/passwd")).rejects.toThrow(/sha256/);
    });

    it("round-trips a 5 MiB blob", async () => {
      const store = await make();
      const big = new Uint8Array(5 * 1024 * 1024).map((_, i) => i % 251);
      const hash = await store.put(big);
      expect((await store.get(hash))?.length).toBe(big.length);
    });
  });
}
