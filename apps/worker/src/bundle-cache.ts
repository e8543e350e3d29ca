import { mkdir, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Code bundles unpacked on this host, one directory per hash (mounted read-only into containers). */
export class BundleCache {
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly root: string,
    private readonly fetchBlob: (hash: string) => Promise<Uint8Array>,
  ) {}

  /** The directory holding `bundle.mjs` for this hash, downloading it once. */
  ensure(hash: string): Promise<string> {
    let pending = this.inflight.get(hash);
    if (!pending) {
      pending = this.download(hash).finally(() => this.inflight.delete(hash));
      this.inflight.set(hash, pending);
    }
    return pending;
  }

  private async download(hash: string): Promise<string> {
    const dir = join(this.root, hash);
    if (await exists(join(dir, "bundle.mjs"))) return dir;
    const tmp = `${dir}.${process.pid}.tmp`;
    await mkdir(tmp, { recursive: true });
    await writeFile(join(tmp, "bundle.mjs"), await this.fetchBlob(hash));
    await rename(tmp, dir).catch(async (error: NodeJS.ErrnoException) => {
      if (!(await exists(join(dir, "bundle.mjs")))) throw error;
    });
    return dir;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
