import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { BuildSecretValues, ImageSecrets, ImageSpec, ImageStep } from "@skiff/protocol";
import { runChecked } from "../runtime/command.js";
import type { ContainerRuntime } from "../runtime/types.js";
import { type BuiltImage, ImageBuildError } from "./built-image.js";
import { makeCacheEntry } from "./cache-entry.js";
import { runStep } from "./run-step.js";
import { describe, stepScript } from "./steps.js";
import { resolveUser } from "./users.js";

/** What an ImageBuilder builds with: its runtime, its cache, and where layers and blobs come from. */
export interface ImageBuilderOptions {
  /** Runs the build steps: it needs an overlay root and network access. */
  runtime: ContainerRuntime;
  /** Layers live in `<cacheDir>/layers/<key>`. */
  cacheDir: string;
  /** The host's npm (its package directory), mounted read-only into npmInstall steps. */
  npmDir: string | undefined;
  /** Reads a blob (an archive of the caller's files, a layer) from the server. */
  fetchBlob: (hash: string) => Promise<Uint8Array>;
  /** Layers other workers built: the blob of a key, if published; and publishing one built here. */
  shared?: {
    find(key: string): Promise<string | undefined>;
    publish(key: string, bytes: Uint8Array): Promise<void>;
  };
  /**
   * The certificate authorities this host trusts (a PEM bundle), given to build steps so that they reach
   * registries as the host does, through a TLS-inspecting proxy too.
   */
  caBundle: string | undefined;
  /** Where run steps' volumes come from and are mounted on this host; without it, such a step fails. */
  volumes?: { serverUrl: string; mountsDir: string };
}

/**
 * A layer as a tar: owners, modes, device files (overlayfs whiteouts) and trusted.* extended attributes
 * (opaque directories) are all part of what it means.
 */
const LAYER_TAR_FLAGS = ["--xattrs", "--xattrs-include=trusted.*", "--numeric-owner", "--same-owner"];
/** Scratch directories of builds and unpacks older than this were left by a crash. */
const SCRATCH_MAX_AGE_MS = 24 * 3_600_000;

/**
 * Builds images layer by layer on this worker. A layer is a directory named by its key; one that exists
 * is reused (a cache hit), a missing one is built by running its step in a container whose root is the
 * layers below it, read-only, with the step's writes captured as the new layer. Concurrent builds of
 * one layer, in this process or another, wait for one another.
 */
export class ImageBuilder {
  private readonly building = new Map<string, Promise<void>>();
  /** Cache entries (layer and archive directories) that running containers use, with how many do. */
  private readonly inUse = new Map<string, number>();
  /** Layers being published in the background; a stopping worker waits for them. */
  private readonly publishing = new Set<Promise<void>>();

  constructor(private readonly options: ImageBuilderOptions) {}

  /** Makes sure every layer of `image` exists, building what is missing; `log` gets the build's lines. */
  async ensure(
    image: ImageSpec,
    base: { rootfs: string; nodeDir: string },
    log: (line: string) => void,
    options: { upToFailure?: boolean; secrets?: BuildSecretValues; volumes?: ImageSecrets["buildVolumes"] } = {},
  ) {
    const entries: string[] = base.rootfs.startsWith(join(this.options.cacheDir, "bases"))
      ? [dirname(base.rootfs)]
      : [];
    const built: BuiltImage = {
      layers: [],
      mounts: [],
      env: {},
      cwd: "/",
      user: undefined,
      release: () => this.release(entries),
    };
    for (const [index, { key, step }] of image.layers.entries()) {
      const where = { step: index + 1, total: image.layers.length, description: describe(step) };
      const dir = this.layerDir(key);
      if (existsSync(join(dir, "done"))) {
        log(`image step ${where.step}/${where.total} ${where.description}: cached`);
      } else {
        let pending = this.building.get(key);
        if (!pending) {
          const secrets = stepEnv(step, options.secrets ?? {});
          const grant = options.volumes;
          pending = this.buildLayer(key, step, { secrets, grant }, built, base, where, log).finally(() =>
            this.building.delete(key),
          );
          this.building.set(key, pending);
        }
        try {
          await pending;
        } catch (error) {
          if (!options.upToFailure || !(error instanceof ImageBuildError)) throw error;
          // A shell into the image as it was before the failing step, to see why.
          log(`${error.message}\nthe shell opens in the image before step ${where.step}`);
          break;
        }
      }
      built.layers.push(join(dir, "fs"));
      entries.push(dir);
      if (step.kind === "env") Object.assign(built.env, step.vars);
      if (step.kind === "workdir") built.cwd = step.path;
      if (step.kind === "user") built.user = await resolveUser(step.user, [...built.layers].reverse(), base.rootfs);
    }
    for (const { archive, target } of image.mounts) {
      const root = await this.unpacked(archive);
      built.mounts.push({ source: join(root, target), target, readonly: true });
      entries.push(dirname(root));
    }
    // Held until the container is gone; the `done` file's time records the last use, for collect().
    const now = new Date();
    for (const entry of entries) {
      this.inUse.set(entry, (this.inUse.get(entry) ?? 0) + 1);
      await utimes(join(entry, "done"), now, now).catch(() => {});
    }
    return built;
  }

  private release(entries: string[]): void {
    for (const entry of entries.splice(0)) {
      const count = (this.inUse.get(entry) ?? 1) - 1;
      if (count > 0) this.inUse.set(entry, count);
      else this.inUse.delete(entry);
    }
  }

  /**
   * Removes cached layers and unpacked archives that no container uses: those unused for `maxAgeMs`,
   * then the least recently used until the cache fits in `maxBytes`; and scratch left by crashed builds.
   */
  async collect(
    limits: { maxBytes: number; maxAgeMs: number; minIdleMs: number },
    now = Date.now(),
  ): Promise<{ removed: number }> {
    // Workers sharing this cache cannot see each other's containers: what ours use looks freshly used
    // to them, and what was used within `minIdleMs` stays whatever the budget.
    for (const entry of this.inUse.keys())
      await utimes(join(entry, "done"), new Date(now), new Date(now)).catch(() => {});
    const found: { dir: string; usedAt: number; bytes: number }[] = [];
    let removed = 0;
    for (const kind of ["layers", "archives", "bases"]) {
      const parent = join(this.options.cacheDir, kind);
      for (const name of await readdir(parent).catch(() => [] as string[])) {
        const dir = join(parent, name);
        if (/\.tmp-/.test(name)) {
          const { mtimeMs } = await stat(dir).catch(() => ({ mtimeMs: now }));
          if (now - mtimeMs > SCRATCH_MAX_AGE_MS) {
            await rm(dir, { recursive: true, force: true });
            removed++;
          }
          continue;
        }
        const done = await stat(join(dir, "done")).catch(() => undefined);
        if (!done) continue;
        const bytes = Number(await readFile(join(dir, "size"), "utf8").catch(() => "0")) || 0;
        found.push({ dir, usedAt: done.mtimeMs, bytes });
      }
    }
    let total = found.reduce((sum, entry) => sum + entry.bytes, 0);
    for (const entry of found.sort((a, b) => a.usedAt - b.usedAt)) {
      if (this.inUse.has(entry.dir) || now - entry.usedAt < limits.minIdleMs) continue;
      if (now - entry.usedAt <= limits.maxAgeMs && total <= limits.maxBytes) continue;
      await rm(entry.dir, { recursive: true, force: true });
      total -= entry.bytes;
      removed++;
    }
    return { removed };
  }

  /** An archive of the caller's files, unpacked once into the cache; returns its root. */
  private async unpacked(archive: string): Promise<string> {
    const dir = join(this.options.cacheDir, "archives", archive);
    await makeCacheEntry(dir, (scratch) => this.extract(archive, join(scratch, "fs")));
    return join(dir, "fs");
  }

  /** Shares a layer built here with other workers, in the background. */
  private publish(key: string, fs: string): void {
    const shared = this.options.shared;
    if (!shared) return;
    const file = `${fs}.publish-${randomUUID().slice(0, 8)}.tar`;
    const done = (async () => {
      try {
        await runChecked("tar", [...LAYER_TAR_FLAGS, "-C", fs, "-cf", file, "."]);
        await shared.publish(key, await readFile(file));
      } finally {
        await rm(file, { force: true });
      }
    })()
      .catch(() => {}) // another worker builds it again: slower, not wrong
      .finally(() => this.publishing.delete(done));
    this.publishing.add(done);
  }

  /** Resolves once layers built here are published (a stopping worker waits for them). */
  async published(): Promise<void> {
    await Promise.all(this.publishing);
  }

  private async extract(archive: string, into: string, flags = ["--no-same-owner"]): Promise<void> {
    await mkdir(into, { recursive: true });
    const file = `${into}.tar`;
    await writeFile(file, await this.options.fetchBlob(archive));
    try {
      await runChecked("tar", ["-x", ...flags, "-f", file, "-C", into]);
    } finally {
      await rm(file, { force: true });
    }
  }

  private layerDir(key: string): string {
    return join(this.options.cacheDir, "layers", key);
  }

  private async buildLayer(
    key: string,
    step: ImageStep,
    { secrets, grant }: { secrets: Record<string, string>; grant: ImageSecrets["buildVolumes"] },
    below: BuiltImage,
    base: { rootfs: string; nodeDir: string },
    where: { step: number; total: number; description: string },
    log: (line: string) => void,
  ): Promise<void> {
    const dir = this.layerDir(key);
    const started = Date.now();
    const say = (what: string) => log(`image step ${where.step}/${where.total} ${where.description}: ${what}`);
    let published: string | undefined;
    const made = await makeCacheEntry(dir, async (scratch) => {
      const upper = join(scratch, "fs");
      const script = stepScript(step);
      // A layer another worker built and published is fetched rather than built again.
      published = await this.options.shared?.find(key).catch(() => undefined);
      say(published ? "fetching" : "building");
      if (published) await this.extract(published, upper, LAYER_TAR_FLAGS);
      else if (step.kind === "copy") await this.extract(step.archive, upper);
      else if (script !== undefined)
        await runStep(this.options, { key, script, step, secrets, grant, below, base, upper, where, log });
      else {
        await mkdir(upper, { recursive: true });
        if (step.kind === "workdir") await mkdir(join(upper, step.path), { recursive: true });
      }
    });
    if (!made) return;
    say(`${published ? "fetched" : "built"} in ${Date.now() - started} ms`);
    if (!published) this.publish(key, join(dir, "fs"));
  }
}

/** The environment a step's secrets give it: their values, later secrets over earlier ones. */
function stepEnv(step: ImageStep, values: BuildSecretValues): Record<string, string> {
  const names = "secrets" in step ? (step.secrets ?? []) : [];
  const missing = names.find((name) => !values[name]);
  if (missing) throw new Error(`the image step needs the secret "${missing}", and the server sent no values for it`);
  return Object.assign({}, ...names.map((name) => values[name]));
}
