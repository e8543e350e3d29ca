import { randomUUID } from "node:crypto";
import { type FileHandle, mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { ArrivingBlob, checkedReader, sha256 } from "./blob-checks.js";
import { assertHash, BlobError, type BlobReader, type BlobStore, type ExpectedBlob } from "./blob-store.js";

const WRITE_BYTES = 1 << 20;
const WRITES_AHEAD = 8;

/** Makes a rename in `dir` survive a power cut. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes at increasing offsets, several at once; the first failure is thrown by a later `add` or by `drain`. */
class WriteQueue {
  private readonly inFlight: Promise<unknown>[] = [];
  private position = 0;
  private failure: { error: unknown } | undefined;

  constructor(private readonly file: FileHandle) {}

  async add(pieces: Uint8Array[], bytes: number): Promise<void> {
    if (this.failure) throw this.failure.error;
    const write = this.file.writev(pieces, this.position).catch((error: unknown) => {
      this.failure ??= { error };
    });
    this.position += bytes;
    this.inFlight.push(write);
    if (this.inFlight.length >= WRITES_AHEAD) await this.inFlight.shift();
  }

  /** Waits for every write; throws the first that failed. */
  async drain(): Promise<void> {
    await Promise.all(this.inFlight.splice(0));
    if (this.failure) throw this.failure.error;
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
    if (await this.has(hash)) return hash;
    await this.write(hash, async (file) => {
      await file.writeFile(bytes);
    });
    return hash;
  }

  async putStream(source: AsyncIterable<Uint8Array>, expected: ExpectedBlob): Promise<string> {
    assertHash(expected.hash);
    const arriving = new ArrivingBlob(expected);
    await this.write(expected.hash, async (file) => {
      // Pieces gather up to a MiB per write: a request body arrives in pieces of a few KiB. Writes go on in
      // the background (each at its own offset) while the next pieces arrive and are hashed, up to
      // WRITES_AHEAD of them: waiting for each write before reading on made receiving twice as slow.
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const writes = new WriteQueue(file);
      try {
        for await (const chunk of source) {
          arriving.add(chunk);
          pending.push(chunk);
          pendingBytes += chunk.length;
          if (pendingBytes >= WRITE_BYTES) {
            await writes.add(pending, pendingBytes);
            pending = [];
            pendingBytes = 0;
          }
        }
        if (pending.length > 0) await writes.add(pending, pendingBytes);
      } catch (error) {
        await writes.drain().catch(() => {});
        throw error;
      }
      await writes.drain();
      arriving.finish();
    });
    return expected.hash;
  }

  /** Writes a blob beside its place and renames it there, synced, once `fill` has written and checked it. */
  private async write(hash: string, fill: (file: FileHandle) => Promise<void>): Promise<void> {
    const path = this.pathOf(hash);
    await mkdir(dirname(path), { recursive: true });
    // Write then rename so a reader never sees a partial blob, each synced before the hash is handed out:
    // an input that names the blob is acknowledged once it is on disk, and so must the blob be.
    const tmp = `${path}.${randomUUID()}.tmp`;
    const file = await open(tmp, "w");
    try {
      await fill(file);
      await file.datasync();
    } catch (error) {
      await file.close().catch(() => {});
      await rm(tmp, { force: true });
      throw error;
    }
    await file.close();
    await rename(tmp, path);
    await syncDirectory(dirname(path));
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    try {
      const bytes = await readFile(this.pathOf(hash));
      if (sha256(bytes) !== hash) throw this.corrupt(hash);
      return bytes;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async getStream(hash: string): Promise<BlobReader | undefined> {
    const path = this.pathOf(hash);
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(path, "r");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
    const { size } = await file.stat();
    const stream = file.createReadStream({ highWaterMark: 1 << 20 });
    return { size, stream: checkedReader(stream, hash, () => this.corrupt(hash)) };
  }

  private corrupt(hash: string): BlobError {
    return new BlobError("BLOB_CORRUPT", `blob ${hash} is corrupt on disk at ${this.pathOf(hash)}`);
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
