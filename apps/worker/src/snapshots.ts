import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readdir, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import type { ContainerSpec } from "./runtime/types.js";

/** How many snapshots a worker keeps; the least recently used go first. */
const DEFAULT_KEEP = 8;

/** The file every complete snapshot directory has (runsc's checkpoint). */
const IMAGE_FILE = "checkpoint.img";

/** A snapshot being taken: its directory to write into, and how it ends. */
export interface SnapshotTaking {
  dir: string;
  /** The checkpoint is complete: later starts restore it. */
  done(): Promise<string>;
  /**
   * It failed: the starts that waited for it boot. `remember`: so do later ones (its state cannot be saved);
   * otherwise the next start tries again (a snap hook threw, or the container could not start).
   */
  failed(reason: string, remember: boolean): Promise<void>;
}

/** What a start finds for its key. */
export type SnapshotLookup =
  | { state: "ready"; dir: string }
  | { state: "failed"; reason: string }
  /** None yet: the caller takes it. */
  | { state: "take"; taking: SnapshotTaking };

/**
 * The memory snapshots on this worker, by key: each is made once (concurrent starts of the same key wait for
 * the one being taken), restored by every later start, and dropped when a restore from it fails. A key whose
 * snapshot failed is remembered until the worker restarts, so that a function whose state cannot be saved
 * boots without trying again each time.
 */
export class SnapshotStore {
  private readonly taking = new Map<string, Promise<SnapshotLookup>>();
  private readonly failures = new Map<string, string>();
  private hostKey: Promise<string> | undefined;

  constructor(
    private readonly dir: string,
    /** What makes this host's snapshots differ from another's: the runtime's version, the CPU's features. */
    private readonly describeHost: () => Promise<string>,
    private readonly keep = DEFAULT_KEEP,
  ) {}

  /** Removes snapshots an earlier worker left half written. */
  async cleanup(): Promise<void> {
    // Snapshots hold processes' memory, their secrets included: root's alone.
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    for (const name of await readdir(this.dir)) {
      if (name.endsWith(".part")) await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }

  /**
   * The key of a container's snapshot: everything its start depends on but its own id and its own directories
   * (socket, volume mounts: `ownPaths`), the bundle and spec it runs, and this host.
   */
  async keyOf(spec: ContainerSpec, extra: unknown, ownPaths: string[]): Promise<string> {
    this.hostKey ??= this.describeHost();
    const own = (path: string) => ownPaths.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));
    const { SKIFF_CONTAINER_ID: _id, ...env } = spec.env;
    const shape = {
      rootfs: spec.rootfs,
      layers: spec.layers ?? [],
      command: spec.command,
      env: Object.entries(env).sort(([a], [b]) => a.localeCompare(b)),
      cwd: spec.cwd,
      user: spec.user ?? null,
      mounts: spec.mounts.map((m) => ({ source: own(m.source) ? null : m.source, target: m.target, ro: m.readonly })),
      cpu: spec.cpu,
      memoryMiB: spec.memoryMiB,
      network: spec.network,
      host: await this.hostKey,
      extra,
    };
    return createHash("sha256").update(JSON.stringify(shape)).digest("hex").slice(0, 32);
  }

  /** The snapshot of `key`: ready, failed before, being taken (waits for it), or none yet (the caller takes it). */
  async lookup(key: string): Promise<SnapshotLookup> {
    const failure = this.failures.get(key);
    if (failure !== undefined) return { state: "failed", reason: failure };
    const ready = join(this.dir, key);
    if (existsSync(join(ready, IMAGE_FILE))) {
      const now = new Date();
      await utimes(ready, now, now).catch(() => {});
      return { state: "ready", dir: ready };
    }
    const pending = this.taking.get(key);
    if (pending) return pending;
    let settle!: (lookup: SnapshotLookup) => void;
    this.taking.set(key, new Promise((resolve) => (settle = resolve)));
    const part = join(this.dir, `${key}.part`);
    await rm(part, { recursive: true, force: true });
    await mkdir(part, { recursive: true });
    const end = (lookup: SnapshotLookup) => {
      this.taking.delete(key);
      settle(lookup);
    };
    return {
      state: "take",
      taking: {
        dir: part,
        done: async () => {
          await rm(ready, { recursive: true, force: true });
          await rename(part, ready);
          end({ state: "ready", dir: ready });
          await this.evict(key);
          return ready;
        },
        failed: async (reason, remember) => {
          if (remember) this.failures.set(key, reason);
          await rm(part, { recursive: true, force: true });
          end({ state: "failed", reason });
        },
      },
    };
  }

  /** A restore from it failed: the next start of its key takes a new one. */
  async drop(key: string): Promise<void> {
    await rm(join(this.dir, key), { recursive: true, force: true });
  }

  /** Its size on disk, in bytes. */
  async sizeOf(dir: string): Promise<number> {
    let bytes = 0;
    for (const name of await readdir(dir)) bytes += (await stat(join(dir, name))).size;
    return bytes;
  }

  /** Keeps the `keep` most recently used snapshots (never `current`). */
  private async evict(current: string): Promise<void> {
    const names = (await readdir(this.dir)).filter((name) => !name.endsWith(".part"));
    if (names.length <= this.keep) return;
    const used = await Promise.all(
      names.map(async (name) => ({
        name,
        at: (await stat(join(this.dir, name)).catch(() => undefined))?.mtimeMs ?? 0,
      })),
    );
    used.sort((a, b) => a.at - b.at);
    for (const { name } of used.slice(0, names.length - this.keep)) {
      if (name !== current) await rm(join(this.dir, name), { recursive: true, force: true });
    }
  }
}

/** This host, as far as a restore cares: the runtime binary's version and the CPU's feature flags. */
export async function describeHost(runtimeVersion: () => Promise<string>): Promise<string> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const flags = /^flags\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "";
  return `${(await runtimeVersion()).trim()}\n${flags}`;
}
