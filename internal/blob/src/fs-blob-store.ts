import { createHash, randomUUID } from "node:crypto";
import { mkdir, open, readFile, rename, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { assertHash, BlobError, type BlobStore } from "./blob-store.js";

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Makes a rename in `dir` survive a power cut. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Blobs as files under `root/ab/cdef…`; a shared mount makes it work across hosts. */
export class FsBlobStore implements BlobStore {
  constructor(readonly root: string) {}

  pathOf(hash: string): string {
    assertHash(hash);
    return join(this.root, hash.slice(0, 2), hash.slice(2));
  }

  async put(bytes: Uint8Array): Promise<string> {
    const hash = sha256(bytes);
    const path = this.pathOf(hash);
    if (await this.has(hash)) return hash;
    await mkdir(dirname(path), { recursive: true });
    // Write then rename so a reader never sees a partial blob, each synced before the hash is handed out:
    // an input that names the blob is acknowledged once it is on disk, and so must the blob be.
    const tmp = `${path}.${randomUUID()}.tmp`;
    const file = await open(tmp, "w");
    try {
      await file.writeFile(bytes);
      await file.datasync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    await syncDirectory(dirname(path));
    return hash;
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = await readFile(this.pathOf(hash));
      if (sha256(bytes) !== hash)
        throw new BlobError("BLOB_CORRUPT", `blob ${hash} is corrupt on disk at ${this.pathOf(hash)}`);
      return bytes;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async has(hash: string): Promise<boolean> {
    try {
      await stat(this.pathOf(hash));
      return true;
    } catch {
      return false;
    }
  }
}
