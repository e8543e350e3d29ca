import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { findExecutable, runCommand } from "../runtime/command.js";
import { mountsUnder, unmount } from "../runtime/overlay.js";

/** One rclone remote: a config section (type and options), kept in a 0600 file, never on a command line. */
export interface RcloneRemote {
  type: string;
  options: Record<string, string>;
}

export interface RcloneMountOptions {
  remote: RcloneRemote;
  /** The path inside the remote to mount ("" for its root). */
  remotePath?: string;
  /** Holds the config file, the VFS cache, the pid file and the mount point `mnt`; made 0700. */
  dir: string;
  readOnly: boolean;
  /** More `rclone mount` flags (after Skiff's, so they win). */
  flags?: string[];
  /** Path of the rclone binary; found on PATH when omitted. */
  binary?: string;
  /** How long the mount may take to appear. */
  startTimeoutMs?: number;
}

/** What `vfs/stats` says of the write-back queue. */
export interface RcloneUploads {
  inProgress: number;
  queued: number;
  errored: number;
}

const REMOTE_NAME = "skiff";
const RC_LINE = /Serving remote control on (http:\/\/127\.0\.0\.1:\d+)\//;
const POLL_MS = 2;
/** The longest wait between two looks at rclone's upload queue (the wait doubles from POLL_MS). */
const POLL_MAX_MS = 50;
const STOP_GRACE_MS = 3_000;
const FUSE_CONNECTIONS = "/sys/fs/fuse/connections";
/** How long a flush waits for the kernel's queue of FUSE requests to empty before it goes on regardless. */
const SETTLE_LIMIT_MS = 1_000;
/** Without fusectl, how long a flush gives the kernel to hand rclone the last closes. */
const SETTLE_FALLBACK_MS = 50;

/**
 * Flags every mount gets: a disk cache that reads ranges lazily and writes back on close (`full`), uploads started
 * as soon as a file is closed, kernel attribute caching off so a reload is seen at once, and access for every uid
 * (containers run as any user; gVisor's gofer opens files on their behalf).
 */
const BASE_FLAGS = [
  "--allow-other",
  "--vfs-cache-mode",
  "full",
  "--vfs-write-back",
  "0s",
  "--attr-timeout",
  "0s",
  "--vfs-read-chunk-size",
  "1M",
  "--buffer-size",
  "0",
  "--no-checksum",
  "--log-level",
  "NOTICE",
];

/** A running `rclone mount`: its mount point, and control over its cache through rclone's remote control API. */
export class RcloneMount {
  private readonly exited: Promise<void>;
  private stopped = false;

  private constructor(
    readonly mountPoint: string,
    private readonly dir: string,
    private readonly child: ChildProcess,
    private readonly rcUrl: string,
    private readonly rcAuth: string,
    readonly log: () => string,
    /** The mount's `/sys/fs/fuse/connections/N/waiting` file, when fusectl is mounted. */
    private readonly waitingFile: string | undefined,
  ) {
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
  }

  static async start(options: RcloneMountOptions): Promise<RcloneMount> {
    const binary = options.binary ?? (await findExecutable("rclone"));
    if (!binary) throw new Error("rclone not found on PATH; run scripts/setup.sh (apt-get install rclone fuse3).");
    const mountPoint = join(options.dir, "mnt");
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
    // A mount left by an rclone that died answers ENOTCONN to everything, mkdir included: detach it first.
    await unmount(mountPoint);
    await mkdir(mountPoint, { recursive: true });
    const config = join(options.dir, "rclone.conf");
    await writeFile(config, toConfig(options.remote), { mode: 0o600 });
    const rcPass = randomBytes(24).toString("hex");
    const args = [
      "mount",
      `${REMOTE_NAME}:${options.remotePath ?? ""}`,
      mountPoint,
      "--config",
      config,
      "--cache-dir",
      join(options.dir, "cache"),
      "--rc",
      "--rc-addr",
      "127.0.0.1:0",
      ...BASE_FLAGS,
      ...(options.readOnly ? ["--read-only"] : []),
      ...(options.flags ?? []),
    ];
    // The remote control password goes in the environment, which only root can read, not in argv, which `ps` shows.
    // Nothing else of the worker's environment goes along: its AWS_* or RCLONE_* settings would change how a remote
    // is reached (AWS_CA_BUNDLE alone breaks the s3 backend). Only where to find CA certificates is kept.
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const name of ["SSL_CERT_FILE", "SSL_CERT_DIR"]) if (process.env[name]) env[name] = process.env[name];
    const child = spawn(binary, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...env, RCLONE_RC_USER: "skiff", RCLONE_RC_PASS: rcPass },
    });
    let log = "";
    let rcUrl: string | undefined;
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      log = (log + chunk).slice(-16_384);
      rcUrl ??= RC_LINE.exec(log)?.[1];
    });
    let exitedEarly = false;
    child.once("exit", () => (exitedEarly = true));
    await writeFile(join(options.dir, "rclone.pid"), String(child.pid ?? ""));
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    while (!(rcUrl && (await isFuseMounted(mountPoint)))) {
      if (exitedEarly || Date.now() > deadline) {
        child.kill("SIGKILL");
        await unmount(mountPoint).catch(() => {});
        const why = exitedEarly ? "exited" : "did not mount in time";
        throw new Error(`rclone mount of ${options.remote.type} at ${mountPoint} ${why}:\n${log.trim()}`);
      }
      await sleep(POLL_MS);
    }
    const auth = `Basic ${Buffer.from(`skiff:${rcPass}`).toString("base64")}`;
    const waitingFile = (await mountFusectl())
      ? join(FUSE_CONNECTIONS, String(minor((await stat(mountPoint)).dev)), "waiting")
      : undefined;
    return new RcloneMount(mountPoint, options.dir, child, rcUrl, auth, () => log, waitingFile);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Calls rclone's remote control API. */
  async rc<T = Record<string, unknown>>(command: string, params: Record<string, unknown> = {}): Promise<T> {
    const response = await fetch(`${this.rcUrl}/${command}`, {
      method: "POST",
      headers: { authorization: this.rcAuth, "content-type": "application/json" },
      body: JSON.stringify(params),
    });
    const body = await response.text();
    if (!response.ok) throw new Error(`rclone rc ${command} failed (${response.status}): ${body}`);
    return JSON.parse(body) as T;
  }

  async uploads(): Promise<RcloneUploads> {
    const stats = await this.rc<{ diskCache?: Record<string, number> }>("vfs/stats");
    const cache = stats.diskCache ?? {};
    return {
      inProgress: cache.uploadsInProgress ?? 0,
      queued: cache.uploadsQueued ?? 0,
      errored: cache.erroredFiles ?? 0,
    };
  }

  /**
   * Waits until every closed file has been uploaded. Files still open for writing are not: their bytes are
   * uploaded when they are closed.
   */
  async flush(timeoutMs = 600_000): Promise<void> {
    await this.settle();
    const deadline = Date.now() + timeoutMs;
    // Soon at first (a small file is uploaded in a few ms), less often while a large upload runs.
    for (let wait = POLL_MS; ; wait = Math.min(wait * 2, POLL_MAX_MS)) {
      const { inProgress, queued, errored } = await this.uploads();
      if (errored > 0) throw new Error(`rclone could not upload ${errored} file(s):\n${this.log().trim()}`);
      if (inProgress === 0 && queued === 0) return;
      if (Date.now() > deadline) throw new Error(`rclone still uploads ${inProgress + queued} file(s)`);
      await sleep(wait);
    }
  }

  /**
   * Waits until rclone has answered the requests the kernel queued for it. A file's close() returns before rclone
   * hears of it (FUSE sends RELEASE in the background), and rclone queues the upload only then: without this a
   * commit right after a close could miss the file.
   */
  private async settle(): Promise<void> {
    if (!this.waitingFile) return void (await sleep(SETTLE_FALLBACK_MS));
    const deadline = Date.now() + SETTLE_LIMIT_MS;
    while (Date.now() < deadline) {
      const waiting = Number((await readFile(this.waitingFile, "utf8").catch(() => "0")).trim());
      if (!(waiting > 0)) return;
      await sleep(1);
    }
  }

  /** Drops rclone's directory cache, so the next look reads the remote again. */
  async forget(): Promise<void> {
    await this.rc("vfs/forget");
  }

  /** Unmounts, stops rclone and removes its directory (config, cache). Idempotent. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true;
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill("SIGTERM");
        await Promise.race([this.exited, sleep(STOP_GRACE_MS)]);
      }
      // rclone unmounts on SIGTERM unless the mount is busy; then detach it, and make sure rclone is gone.
      if (await isFuseMounted(this.mountPoint)) await unmount(this.mountPoint);
      if (this.child.exitCode === null && this.child.signalCode === null) {
        this.child.kill("SIGKILL");
        await this.exited;
      }
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Unmounts and stops what an earlier worker process left under `stateDir` (rclone mounts, their processes, their
 * directories), e.g. after it was killed.
 */
export async function cleanupStaleRcloneMounts(stateDir: string): Promise<void> {
  for (const mountPoint of await mountsUnder(stateDir)) await unmount(mountPoint).catch(() => {});
  for (const pidFile of await findFiles(stateDir, "rclone.pid")) {
    const pid = Number(await readFile(pidFile, "utf8").catch(() => ""));
    const command = pid > 0 ? await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "") : "";
    if (command.includes("rclone") && command.includes(stateDir)) process.kill(pid, "SIGKILL");
  }
  await rm(stateDir, { recursive: true, force: true });
}

/** Whether a FUSE file system is mounted exactly at `mountPoint`. */
export async function isFuseMounted(mountPoint: string): Promise<boolean> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  return text.split("\n").some((line) => {
    const fields = line.split(" ");
    const separator = fields.indexOf("-");
    return decodeField(fields[4] ?? "") === mountPoint && (fields[separator + 1] ?? "").startsWith("fuse");
  });
}

/** Mounts fusectl where it is not (systemd does it on most hosts); false when it cannot be. */
async function mountFusectl(): Promise<boolean> {
  if (!existsSync(FUSE_CONNECTIONS)) return false;
  const mounts = await readFile("/proc/self/mounts", "utf8");
  if (mounts.split("\n").some((line) => line.split(" ")[1] === FUSE_CONNECTIONS)) return true;
  return (await runCommand("mount", ["-t", "fusectl", "fusectl", FUSE_CONNECTIONS])).code === 0;
}

/** The minor number of a device id as stat() gives it; a FUSE connection is named by it (its major is 0). */
function minor(dev: number): number {
  return (dev & 0xff) | ((dev >> 12) & 0xfff00);
}

function toConfig(remote: RcloneRemote): string {
  const lines = [`[${REMOTE_NAME}]`, `type = ${remote.type}`];
  for (const [key, value] of Object.entries(remote.options)) {
    if (/[\r\n]/.test(value)) throw new Error(`rclone option ${key} may not contain a line break`);
    lines.push(`${key} = ${value}`);
  }
  return `${lines.join("\n")}\n`;
}

function decodeField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

async function findFiles(dir: string, name: string, depth = 4): Promise<string[]> {
  if (depth < 0 || !existsSync(dir)) return [];
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const path = join(dir, entry.name);
    if (entry.isFile() && entry.name === name) found.push(path);
    else if (entry.isDirectory() && entry.name !== "mnt" && entry.name !== "cache") {
      found.push(...(await findFiles(path, name, depth - 1)));
    }
  }
  return found;
}
