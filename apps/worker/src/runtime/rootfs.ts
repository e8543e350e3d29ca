import { existsSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { findExecutable, runChecked } from "./command.js";
import { withFileLock } from "./file-lock.js";

const SUITE = "bookworm";
const MIRROR = "http://deb.debian.org/debian";

/**
 * Returns a Debian bookworm minbase root filesystem at `<cacheDir>/rootfs/bookworm-minbase`, building it with
 * debootstrap on first use (a few minutes; needs root and network). Concurrent callers wait for one build.
 *
 * @example const rootfs = await ensureBaseRootfs("/root/.skiff/cache");
 */
export async function ensureBaseRootfs(cacheDir: string, log?: (line: string) => void): Promise<string> {
  const parent = join(cacheDir, "rootfs");
  const target = join(parent, `${SUITE}-minbase`);
  if (existsSync(join(target, "bin"))) return target;
  await mkdir(parent, { recursive: true });
  return withFileLock(`${target}.lock`, async () => {
    if (existsSync(join(target, "bin"))) return target;
    // Said where the caller waits: a first run on a new machine is otherwise a silent minute.
    log?.(
      `preparing the Debian ${SUITE} base image (first use on this worker, about a minute; \`skiff prepare\` does it ahead)`,
    );
    await debootstrap(`${target}.tmp`);
    await rename(`${target}.tmp`, target);
    return target;
  });
}

async function debootstrap(dir: string): Promise<void> {
  const binary = await findExecutable("debootstrap");
  if (!binary) {
    throw new Error(
      "debootstrap is not installed, so the base image cannot be built: run `make setup` (or apt-get install debootstrap).",
    );
  }
  await rm(dir, { recursive: true, force: true });
  try {
    await runChecked(binary, ["--variant=minbase", SUITE, dir, MIRROR]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `Building the base rootfs failed; check network access to ${MIRROR} and retry.\n${(error as Error).message}`,
    );
  }
}
