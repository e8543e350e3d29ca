import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runChecked, runCommand } from "./command.js";

/** The directories of one container's writable root: `merged` is what the container sees as `/`. */
export interface OverlayDirs {
  upper: string;
  work: string;
  merged: string;
}

/** The overlay directories kept under a container's bundle directory. */
export function overlayDirs(bundleDir: string): OverlayDirs {
  return { upper: join(bundleDir, "upper"), work: join(bundleDir, "work"), merged: join(bundleDir, "rootfs") };
}

/**
 * Mounts `lowers` (bottom first) read-only under a writable layer: a fresh one in `bundleDir`, or
 * `upper` when given (its work directory goes beside it, as `<upper>.work`). Returns the directories.
 */
export async function mountOverlay(lowers: string[], bundleDir: string, upper?: string): Promise<OverlayDirs> {
  for (const path of [...lowers, bundleDir, upper ?? ""]) {
    if (/[,:]/.test(path)) {
      throw new Error(`Overlay paths may not contain ',' or ':' (${path}); move the rootfs, cache or state dir.`);
    }
  }
  const scratch = overlayDirs(bundleDir);
  const dirs = upper ? { upper, work: `${upper}.work`, merged: scratch.merged } : scratch;
  await Promise.all([dirs.upper, dirs.work, dirs.merged].map((dir) => mkdir(dir, { recursive: true })));
  // overlayfs lists lower directories top first.
  const lower = [...lowers].reverse().join(":");
  const options = `lowerdir=${lower},upperdir=${dirs.upper},workdir=${dirs.work}`;
  await runChecked("mount", ["-t", "overlay", "overlay", "-o", options, dirs.merged]).catch((error: Error) => {
    throw new Error(
      `${error.message}\nCheck that ${lowers.join(", ")} exist and the kernel supports overlayfs (modprobe overlay).`,
    );
  });
  return dirs;
}

/** Unmounts a mount point, retrying while busy and detaching lazily as a last resort. Missing mounts are fine. */
export async function unmount(mountPoint: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (!(await isMounted(mountPoint))) return;
    const result = await runCommand("umount", [mountPoint]);
    if (result.code === 0) return;
    await sleep(50 * (attempt + 1));
  }
  await runChecked("umount", ["-l", mountPoint]);
}

/** Mount points at or below `dir`, deepest first, read from /proc/mounts. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return (await readMountPoints())
    .filter((mountPoint) => mountPoint === dir || mountPoint.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

async function isMounted(mountPoint: string): Promise<boolean> {
  return (await readMountPoints()).includes(mountPoint);
}

async function readMountPoints(): Promise<string[]> {
  const text = await readFile("/proc/mounts", "utf8");
  return text
    .split("\n")
    .map((line) => line.split(" ")[1])
    .filter((field): field is string => Boolean(field))
    .map(decodeMountField);
}

function decodeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}
