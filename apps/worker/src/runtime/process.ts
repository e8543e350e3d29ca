import { type ChildProcess, spawn } from "node:child_process";
import { stat } from "node:fs/promises";
import { toContainerExit } from "./oci-runtime.js";
import { DEFAULT_PATH } from "./oci-spec.js";
import { startOnce } from "./start-once.js";
import type { ContainerExit, ContainerHandle, ContainerRuntime, ContainerSpec, Mount } from "./types.js";

const NO_ISOLATION_WARNING =
  "skiff: the process runtime gives NO isolation: containers run as plain processes on this host, with its files, " +
  "network and user, and without memory or cpu limits. Use gvisor or runc for untrusted code.";

/** Runs each "container" as a plain child process on the host: no isolation, no limits, mounts mapped to host paths. */
export class ProcessRuntime implements ContainerRuntime {
  readonly name = "process" as const;
  private readonly children = new Map<string, { child: ChildProcess; exited: Promise<ContainerExit> }>();
  private readonly starting = new Map<string, Promise<ContainerHandle>>();

  constructor(options: { quiet?: boolean } = {}) {
    if (!options.quiet) console.warn(NO_ISOLATION_WARNING);
  }

  async available(): Promise<{ ok: true }> {
    return { ok: true };
  }

  async start(spec: ContainerSpec): Promise<ContainerHandle> {
    if (spec.layers?.length || spec.upperDir) {
      throw new Error("the process runtime cannot use image layers: install runc or runsc and run `make setup`");
    }
    if (spec.checkpointable || spec.restoreFrom) {
      throw new Error("the process runtime cannot checkpoint or restore containers: use gvisor");
    }
    return startOnce(
      this.starting,
      (id) => this.children.has(id),
      spec.id,
      () => this.spawnContainer(spec),
    );
  }

  async kill(id: string): Promise<void> {
    await this.starting.get(id)?.catch(() => {});
    const entry = this.children.get(id);
    if (!entry) return;
    // The child leads its own process group; killing the group takes its descendants with it.
    if (entry.child.pid !== undefined) {
      try {
        process.kill(-entry.child.pid, "SIGKILL");
      } catch {}
    }
    await entry.exited;
  }

  async cleanupStale(): Promise<void> {}

  private async spawnContainer(spec: ContainerSpec): Promise<ContainerHandle> {
    const [file, ...args] = spec.command.map((arg) => toHostPath(arg, spec.mounts));
    if (!file) throw new Error(`Container ${spec.id} has an empty command; give at least the program to run.`);
    const cwd = toHostPath(spec.cwd, spec.mounts);
    await assertDirectory(cwd, spec.cwd);
    const child = spawn(file, args, {
      cwd,
      env: hostEnv(spec),
      stdio: [spec.stdin ? "pipe" : "ignore", "pipe", "pipe"],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (error) =>
        reject(new Error(`Cannot start ${file} for container ${spec.id}: ${error.message}`)),
      );
    });
    const exited = waitForExit(child);
    this.children.set(spec.id, { child, exited });
    const forget = () => this.children.delete(spec.id);
    exited.then(forget, forget);
    return {
      id: spec.id,
      stdout: child.stdout!,
      stderr: child.stderr!,
      ...(child.stdin ? { stdin: child.stdin } : {}),
      exited,
    };
  }
}

/** Replaces a leading mount target in a container path with the mount's host source (longest target wins). */
export function toHostPath(value: string, mounts: Mount[]): string {
  const match = [...mounts]
    .sort((a, b) => b.target.length - a.target.length)
    .find((mount) => value === mount.target || value.startsWith(`${mount.target.replace(/\/$/, "")}/`));
  return match ? match.source + value.slice(match.target.length) : value;
}

function hostEnv(spec: ContainerSpec): Record<string, string> {
  const env = Object.fromEntries(Object.entries(spec.env).map(([key, value]) => [key, toHostPath(value, spec.mounts)]));
  return { PATH: DEFAULT_PATH, ...env };
}

async function assertDirectory(hostPath: string, containerPath: string): Promise<void> {
  const info = await stat(hostPath).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new Error(
      `cwd ${containerPath} (host path ${hostPath}) is not a directory; mount it or pick an existing cwd.`,
    );
  }
}

function waitForExit(child: ChildProcess): Promise<ContainerExit> {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => resolve({ ...toContainerExit(code, signal), oomKilled: false }));
  });
}
