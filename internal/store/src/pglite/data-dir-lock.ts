import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";

/** Lock files this process holds, by path. */
const held = new Set<string>();

/**
 * Takes `${dataDir}.lock` for this process, so that one embedded database directory is never opened by two
 * Postgres instances at once (two `skiff up` on one SKIFF_HOME would each write its files and corrupt them).
 * A lock whose process is gone is taken over. Returns the function that gives it back.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = `${dataDir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      held.add(path);
      return () => {
        if (!held.delete(path)) return;
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) unlinkSync(path);
        } catch {}
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt > 0) throw error;
    }
    const owner = Number(readFileSync(path, "utf8").trim());
    const ours = owner === process.pid && held.has(path);
    if (ours || (owner !== process.pid && isAlive(owner))) {
      throw new Error(
        `the embedded store in ${dataDir} is open in ${ours ? "this process already" : `another process (pid ${owner})`}: ` +
          "stop that Skiff server first (a `skiff up`, or the embedded server `skiff run` started), or give this one another SKIFF_HOME",
      );
    }
    // Left by a process that ended without closing the store.
    unlinkSync(path);
  }
}

/** Whether a process with this pid runs (perhaps as another user). */
export function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
