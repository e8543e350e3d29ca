import type { Readable, Writable } from "node:stream";

export type RuntimeName = "gvisor" | "runc" | "process";

export interface Mount {
  /** Path on the host. */
  source: string;
  /** Path inside the container. */
  target: string;
  readonly: boolean;
  /**
   * The host reads or changes these files while the container runs (a volume's FUSE mount, committed and
   * reloaded underneath it): the runtime must not hold host files open past the container's close(), nor serve
   * a file from a host handle opened before the host changed it. gVisor then opens one host file per open().
   */
  sharedWithHost?: boolean;
}

/** Everything a runtime needs to start one container. Paths in command/env/cwd are container paths. */
export interface ContainerSpec {
  /** Unique id, [a-z0-9-], at most 48 characters. */
  id: string;
  /** A prepared base root filesystem, used read-only as the lower layer of a per-container overlay. */
  rootfs: string;
  /** Image layers (directories) stacked read-only on top of `rootfs`, bottom first. */
  layers?: string[];
  /**
   * Where the container's writes go, kept after it exits: how an image layer is built. By default they
   * go to a scratch directory removed with the container.
   */
  upperDir?: string;
  command: string[];
  env: Record<string, string>;
  cwd: string;
  /** Run as this user instead of root. */
  user?: { uid: number; gid: number };
  mounts: Mount[];
  /** CPU cores (fractional allowed); enforced where the runtime can. */
  cpu: number;
  /** Memory limit in MiB; enforced where the runtime can. */
  memoryMiB: number;
  /**
   * "host" shares the host's network; "none" gives the container loopback only; "private" gives it its own
   * namespace with an address on the bridge skiff0, egress through NAT, and no access to the host itself
   * (the process runtime cannot isolate and treats it as "host").
   */
  network: "host" | "none" | "private";
  /** Give the container a stdin to write to (`ContainerHandle.stdin`); otherwise it reads nothing. */
  stdin?: boolean;
  /**
   * The container may be checkpointed (`ContainerRuntime.checkpoint`), or is restored from `restoreFrom`: the
   * runtime then runs it the way a checkpoint needs (gVisor: its own network stack instead of the host's).
   */
  checkpointable?: boolean;
  /**
   * Start from this checkpoint (a directory `checkpoint` wrote) instead of running `command`: processes, memory
   * and open files as they were, in this spec's root, mounts and network. Needs `checkpointable`.
   */
  restoreFrom?: string;
}

export interface ContainerExit {
  exitCode: number | null;
  signal: string | null;
  /** The container was killed for exceeding its memory limit. */
  oomKilled: boolean;
}

export interface ContainerHandle {
  readonly id: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** When the spec asked for one. */
  readonly stdin?: Writable;
  /** Resolves once the container has exited and its resources (overlay, cgroup, state) are released. */
  readonly exited: Promise<ContainerExit>;
  /**
   * Resolves as soon as the container's process has exited, with the same exit, before its resources are
   * released (which `exited` waits for): what ran in it is over, and can be reported. Absent where both are one.
   */
  readonly ended?: Promise<ContainerExit>;
}

/** One interface for gVisor, runc and plain processes; all pass runtime.conformance.ts. */
export interface ContainerRuntime {
  readonly name: RuntimeName;
  /** Whether this runtime can run here, and why not. */
  available(): Promise<{ ok: true } | { ok: false; reason: string }>;
  start(spec: ContainerSpec): Promise<ContainerHandle>;
  /** Kills the container (SIGKILL) if it runs; `exited` then resolves. Idempotent. */
  kill(id: string): Promise<void>;
  /**
   * Runs a command beside a running container's own, inside it; resolves with its exit code. Runtimes
   * without containers (process) have none.
   */
  exec?(id: string, command: string[]): Promise<{ code: number | null; stderr: string }>;
  /**
   * Removes containers, mounts and state left by an earlier worker process that died, then gets ready for the
   * first starts (OCI runtimes make spare network namespaces).
   */
  cleanupStale(): Promise<void>;
  /**
   * Saves a running `checkpointable` container's whole state into `dir` (made empty by the caller), for
   * `ContainerSpec.restoreFrom`; the container then exits (`exited` resolves). Runtimes that cannot have none.
   */
  checkpoint?(id: string, dir: string): Promise<void>;
  /** The runtime binary's version (its `--version`), where it has one. */
  version?(): Promise<string>;
  /** Releases what the runtime made ahead for starts to come; running containers are not touched. */
  close?(): Promise<void>;
}
