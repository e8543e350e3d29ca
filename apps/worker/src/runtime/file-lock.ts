import { open, readFile, unlink } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";

const POLL_MS = 250;

/**
 * Runs `fn` while holding an exclusive lock file (created with O_EXCL, holding our pid).
 * A lock left by a process that no longer exists is taken over.
 */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (!(await tryAcquire(lockPath))) {
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for lock ${lockPath}; if no other Skiff process is using it, delete the file.`,
      );
    }
    await sleep(POLL_MS);
  }
  try {
    return await fn();
  } finally {
    await unlink(lockPath).catch(() => {});
  }
}

async function tryAcquire(lockPath: string): Promise<boolean> {
  try {
    const handle = await open(lockPath, "wx");
    await handle.writeFile(String(process.pid));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  if (await holderIsGone(lockPath)) await unlink(lockPath).catch(() => {});
  return false;
}

async function holderIsGone(lockPath: string): Promise<boolean> {
  const pid = Number.parseInt(await readFile(lockPath, "utf8").catch(() => ""), 10);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}
