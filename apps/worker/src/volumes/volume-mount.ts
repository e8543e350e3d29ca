import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { RcloneMount } from "./rclone-mount.js";
import type { VolumeSource, VolumeVersion } from "./volume-source.js";
import { type CommitResult, VolumeView } from "./volume-view.js";
import { startWebdavServer, type WebdavServer, type WebdavServerOptions } from "./webdav-server.js";

export interface VolumeMountOptions {
  source: VolumeSource;
  /** The version to show; the latest when omitted. */
  version?: VolumeVersion;
  readOnly?: boolean;
  /** This mount's own directory on the worker (view scratch, rclone cache and mount point); removed on close. */
  dir: string;
  /** Commit pending changes this often in the background; 0 turns it off. */
  autoCommitMs?: number;
  /** More `rclone mount` flags. */
  rcloneFlags?: string[];
  /** Sees every WebDAV request rclone makes (tests count them). */
  onRequest?: WebdavServerOptions["onRequest"];
  /** Told about a background commit that failed; the changes stay pending for the next one. */
  onAutoCommitError?: (error: Error) => void;
}

const DEFAULT_AUTO_COMMIT_MS = 5_000;

/**
 * A volume mounted on the worker, ready to be bind-mounted into one container at `hostPath`. The container's
 * writes go through rclone's disk cache to this mount's view, where they stay the container's own until a
 * commit. Mounting reads nothing of the volume: rclone asks for directories and byte ranges as they are used.
 */
export class VolumeMount {
  private autoCommit: NodeJS.Timeout | undefined;
  private committing: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly view: VolumeView,
    private readonly webdav: WebdavServer,
    private readonly rclone: RcloneMount,
    private readonly dir: string,
  ) {}

  /** The host directory to bind-mount into the container. */
  get hostPath(): string {
    return this.rclone.mountPoint;
  }

  get readOnly(): boolean {
    return this.view.readOnly;
  }

  static async mount(options: VolumeMountOptions): Promise<VolumeMount> {
    const readOnly = options.readOnly ?? false;
    const view = new VolumeView({
      source: options.source,
      ...(options.version ? { base: options.version } : {}),
      scratchDir: join(options.dir, "pending"),
      readOnly,
    });
    await view.open();
    const token = randomBytes(32).toString("hex");
    const webdav = await startWebdavServer({
      view,
      token,
      ...(options.onRequest ? { onRequest: options.onRequest } : {}),
    });
    const rclone = await RcloneMount.start({
      // "owncloud", not "other": rclone then keeps modification times (X-OC-Mtime) and compares them, with sizes,
      // to tell a changed file from the one it cached; with "other" it compares sizes only.
      remote: { type: "webdav", options: { url: webdav.url, vendor: "owncloud", bearer_token: token } },
      dir: join(options.dir, "rclone"),
      readOnly,
      flags: [
        // Directories change only through this mount, or on a reload, which drops the cache.
        "--dir-cache-time",
        "1000h",
        "--poll-interval",
        "0",
        // Read-only: no disk cache to write through (nothing is written), and 32 MiB read ahead, so a
        // sequential read streams (a 512 MiB read on the host went from 122 to 315 MiB/s); a small read at an
        // offset may fetch up to that much more.
        ...(readOnly ? ["--vfs-cache-mode", "off", "--buffer-size", "32M"] : []),
        ...(options.rcloneFlags ?? []),
      ],
    }).catch(async (error: unknown) => {
      await webdav.close();
      await view.close();
      throw error;
    });
    const mount = new VolumeMount(view, webdav, rclone, options.dir);
    const every = options.autoCommitMs ?? DEFAULT_AUTO_COMMIT_MS;
    if (every > 0 && !readOnly) {
      mount.autoCommit = setInterval(() => {
        if (mount.view.pendingPaths.length === 0) return;
        mount.commit().catch((error: Error) => options.onAutoCommitError?.(error));
      }, every);
      mount.autoCommit.unref();
    }
    return mount;
  }

  /**
   * Uploads what the container wrote and closed, then commits the pending changes. The view's base becomes the
   * committed version, which also holds what others committed before.
   */
  async commit(): Promise<CommitResult> {
    return this.serialize(async () => {
      if (this.readOnly) return { version: this.view.base, changes: [] };
      await this.rclone.flush();
      const result = await this.view.commit();
      if (result.changes.length > 0) await this.rclone.forget();
      return result;
    });
  }

  /** Shows the latest committed version (with this container's pending changes still on top). */
  async reload(): Promise<VolumeVersion> {
    return this.serialize(async () => {
      if (!this.readOnly) await this.rclone.flush();
      const version = await this.view.reload();
      await this.rclone.forget();
      return version;
    });
  }

  /**
   * Unmounts and removes everything the mount made. With `commit`, as after a clean container exit, what the
   * container wrote is committed first; otherwise it is dropped. Idempotent.
   */
  async close(options: { commit: boolean }): Promise<CommitResult | undefined> {
    if (this.closed) return undefined;
    this.closed = true;
    clearInterval(this.autoCommit);
    let result: CommitResult | undefined;
    try {
      if (options.commit && !this.readOnly) {
        await this.committing.catch(() => {});
        await this.rclone.flush();
        result = await this.view.commit();
      }
    } finally {
      await this.rclone.stop();
      await this.webdav.close();
      await this.view.close();
      await rm(this.dir, { recursive: true, force: true });
    }
    return result;
  }

  private serialize<T>(task: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error("the volume mount is closed"));
    const result = this.committing.then(task);
    this.committing = result.catch(() => {});
    return result;
  }
}
