import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { withFileLock } from "../runtime/file-lock.js";
import { diskUsage } from "./disk-usage.js";

/**
 * One entry of the image cache (a layer, an unpacked archive, a registry base): its content in
 * `dir/fs`, made once by `make` under a lock across processes, in a scratch directory (`make` fills
 * `scratch/fs` and may leave other files there) moved into place when complete. A `size` file serves
 * ImageBuilder.collect, and the `done` file marks it complete (its time is the last use). Resolves with
 * whether this call made it: false when it was there, or another process made it meanwhile.
 */
export async function makeCacheEntry(dir: string, make: (scratch: string) => Promise<void>): Promise<boolean> {
  if (existsSync(join(dir, "done"))) return false;
  await mkdir(dirname(dir), { recursive: true });
  return withFileLock(`${dir}.lock`, async () => {
    if (existsSync(join(dir, "done"))) return false;
    const scratch = `${dir}.tmp-${randomUUID().slice(0, 8)}`;
    try {
      await mkdir(scratch, { recursive: true });
      await make(scratch);
      await writeFile(join(scratch, "size"), String(await diskUsage(join(scratch, "fs"))));
      await writeFile(join(scratch, "done"), `${new Date().toISOString()}\n`);
      await rm(dir, { recursive: true, force: true });
      await rename(scratch, dir);
      return true;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
}
