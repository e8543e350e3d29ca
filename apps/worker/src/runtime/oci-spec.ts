import { existsSync, readFileSync } from "node:fs";
import { CPU_PERIOD_US, cpuQuota } from "./cgroup.js";
import type { ContainerSpec, Mount } from "./types.js";

/** The subset of the OCI runtime spec (1.0.2) that Skiff writes. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<"bounding" | "effective" | "permitted", string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    cgroupsPath: string;
    namespaces: OciNamespace[];
    resources: {
      devices: { allow: boolean; access: string }[];
      memory: { limit: number; swap: number };
      cpu: { quota: number; period: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** A namespace the container gets: new, or the existing one at `path`. */
export interface OciNamespace {
  type: string;
  path?: string;
}

/** One entry of an OCI spec's `mounts`. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** Docker's default capability set. */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** PATH given to a container whose spec sets none. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MASKED_PATHS = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
];

const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const BASE_MOUNTS: OciMount[] = [
  { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
  {
    destination: "/dev",
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
  },
  {
    destination: "/dev/pts",
    type: "devpts",
    source: "devpts",
    options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
  },
  {
    destination: "/dev/shm",
    type: "tmpfs",
    source: "shm",
    options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
  },
  { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
  { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
];

/** Host files a container on the host or a private network needs for name resolution. */
const HOST_NETWORK_FILES = ["/etc/resolv.conf", "/etc/hosts"];

const WANTED_NOFILE = 65_536;

/**
 * Builds config.json for runc and runsc. `rootPath` is the merged overlay; `cgroupsPath` is relative so it nests
 * under ours. For network "private", `netnsPath` is the namespace the container joins; without it the runtime is
 * expected to be started inside that namespace already (runsc). `sharedMountOptions` go on the mounts marked
 * `sharedWithHost`.
 */
export function buildOciSpec(
  spec: ContainerSpec,
  rootPath: string,
  cgroupsPath: string,
  netnsPath?: string,
  sharedMountOptions: readonly string[] = [],
): OciSpec {
  const memoryBytes = spec.memoryMiB * 1024 * 1024;
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: spec.user ?? { uid: 0, gid: 0 },
      args: spec.command,
      env: toEnvList(spec.env),
      cwd: spec.cwd,
      capabilities: {
        bounding: DEFAULT_CAPABILITIES,
        effective: DEFAULT_CAPABILITIES,
        permitted: DEFAULT_CAPABILITIES,
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: nofileLimit(), soft: nofileLimit() }],
      noNewPrivileges: true,
    },
    root: { path: rootPath, readonly: false },
    hostname: spec.id,
    mounts: [
      ...BASE_MOUNTS,
      ...networkMounts(spec.network),
      ...spec.mounts.map((mount) => toBindMount(mount, sharedMountOptions)),
    ],
    linux: {
      cgroupsPath,
      namespaces: namespaces(spec.network, netnsPath),
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        memory: { limit: memoryBytes, swap: memoryBytes },
        cpu: { quota: cpuQuota(spec.cpu), period: CPU_PERIOD_US },
      },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}

/** `KEY=value` pairs, with a default PATH when the spec has none. */
export function toEnvList(env: Record<string, string>): string[] {
  const withPath = "PATH" in env ? env : { PATH: DEFAULT_PATH, ...env };
  return Object.entries(withPath).map(([key, value]) => `${key}=${value}`);
}

function toBindMount(mount: Mount, sharedMountOptions: readonly string[] = []): OciMount {
  return {
    destination: mount.target,
    type: "bind",
    source: mount.source,
    options: [
      "rbind",
      "nosuid",
      "nodev",
      ...(mount.sharedWithHost ? sharedMountOptions : []),
      mount.readonly ? "ro" : "rw",
    ],
  };
}

function networkMounts(network: ContainerSpec["network"]): OciMount[] {
  if (network === "none") return [];
  return HOST_NETWORK_FILES.filter((file) => existsSync(file)).map((file) =>
    toBindMount({ source: file, target: file, readonly: true }),
  );
}

function namespaces(network: ContainerSpec["network"], netnsPath: string | undefined): OciNamespace[] {
  const base: OciNamespace[] = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }];
  if (network === "none") return [...base, { type: "network" }];
  if (network === "private" && netnsPath) return [...base, { type: "network", path: netnsPath }];
  return base;
}

// Raising a hard limit needs CAP_SYS_RESOURCE, which a worker in a restricted host may lack.
function nofileLimit(): number {
  const line = readFileSync("/proc/self/limits", "utf8")
    .split("\n")
    .find((row) => row.startsWith("Max open files"));
  const hard = line?.split(/\s{2,}/)[2];
  const value = hard === undefined || hard === "unlimited" ? Number.POSITIVE_INFINITY : Number(hard);
  return Number.isFinite(value) ? Math.min(WANTED_NOFILE, value) : WANTED_NOFILE;
}
