import { mkdir, readFile, rmdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The memory cgroup a container gets, resolved the way runc and runsc resolve a relative `cgroupsPath`. */
export interface MemoryCgroup {
  version: 1 | 2;
  /** Absolute directory under /sys/fs/cgroup. */
  dir: string;
}

interface CgroupLine {
  controllers: string[];
  path: string;
}

/** Where a relative cgroupsPath (like `skiff/<id>`) lands for the memory controller of this process. */
export async function resolveMemoryCgroup(relativePath: string): Promise<MemoryCgroup> {
  const lines = parseProcCgroup(await readFile("/proc/self/cgroup", "utf8"));
  const mounts = await readFile("/proc/mounts", "utf8");
  const v1 = lines.find((line) => line.controllers.includes("memory"));
  if (v1) {
    const mountPoint = findCgroupMount(mounts, (type, options) => type === "cgroup" && options.includes("memory"));
    return { version: 1, dir: join(mountPoint, v1.path, relativePath) };
  }
  const unified = lines.find((line) => line.controllers.length === 1 && line.controllers[0] === "");
  const mountPoint = findCgroupMount(mounts, (type) => type === "cgroup2");
  return { version: 2, dir: join(mountPoint, unified?.path ?? "/", relativePath) };
}

/** Creates the memory cgroup with a limit, for runtimes (runsc) that leave a pre-existing cgroup in place on exit. */
export async function createMemoryCgroup(cgroup: MemoryCgroup, limitBytes: number, cpu: number): Promise<void> {
  await mkdir(cgroup.dir, { recursive: true });
  if (cgroup.version === 1) {
    await writeFile(join(cgroup.dir, "memory.limit_in_bytes"), String(limitBytes));
    return;
  }
  // On v2 the whole cgroup is ours, so the runtime will not set the cpu limit either.
  await writeFile(join(cgroup.dir, "memory.max"), String(limitBytes));
  await writeFile(join(cgroup.dir, "memory.swap.max"), "0").catch(() => {});
  await writeFile(join(cgroup.dir, "cpu.max"), `${cpuQuota(cpu)} ${CPU_PERIOD_US}`).catch(() => {});
}

/** How many processes the kernel OOM-killed in this cgroup; 0 when the cgroup is gone. */
export async function readOomKills(cgroup: MemoryCgroup): Promise<number> {
  const file = cgroup.version === 1 ? "memory.oom_control" : "memory.events";
  const text = await readFile(join(cgroup.dir, file), "utf8").catch(() => "");
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match ? Number(match[1]) : 0;
}

/** Removes a cgroup directory once its last process has gone; a missing one is fine. */
export async function removeCgroup(cgroup: MemoryCgroup): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await rmdir(cgroup.dir);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || attempt >= REMOVE_ATTEMPTS) throw error;
      await sleep(50 * attempt);
    }
  }
}

const REMOVE_ATTEMPTS = 10;

/** CFS period used for every container. */
export const CPU_PERIOD_US = 100_000;

/** CFS quota (microseconds per period) for a number of cores. */
export function cpuQuota(cpu: number): number {
  return Math.max(1000, Math.round(cpu * CPU_PERIOD_US));
}

function parseProcCgroup(text: string): CgroupLine[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [, controllers = "", ...rest] = line.split(":");
      return { controllers: controllers.split(","), path: rest.join(":") };
    });
}

function findCgroupMount(mounts: string, match: (type: string, options: string[]) => boolean): string {
  for (const line of mounts.split("\n")) {
    const [, mountPoint, type, options] = line.split(" ");
    if (mountPoint && type && options && match(type, options.split(","))) return mountPoint;
  }
  throw new Error(
    "No cgroup filesystem with a memory controller is mounted; mount cgroups (v1 or v2) at /sys/fs/cgroup.",
  );
}
