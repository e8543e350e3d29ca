import { existsSync } from "node:fs";
import { createMemoryCgroup, removeCgroup } from "./cgroup.js";
import { findExecutable, runCommand } from "./command.js";
import { type OciContainer, OciRuntime, type OciRuntimeOptions } from "./oci-runtime.js";
import type { ContainerSpec } from "./types.js";

/**
 * The first runsc release that passes a bind mount's gofer options from config.json on to its file system
 * (release-20231120.0). The gofer has known `disable_file_handle_sharing` since 20230327, but earlier releases
 * did not pass it on from config.json; Debian bookworm's 20221219 refuses it (`unknown mount option`).
 */
const FILE_HANDLE_SHARING_OPTION_SINCE = 20231120;

/**
 * The release date (YYYYMMDD) in `runsc --version`'s first line: `runsc version release-20240729.0` upstream,
 * `runsc version 0.0~20221219.0` from Debian; undefined for a build without one.
 */
export function runscReleaseDate(versionOutput: string): number | undefined {
  const match = /^runsc version \S*?(\d{8})\.\d+/.exec(versionOutput.split("\n")[0] ?? "");
  return match ? Number(match[1]) : undefined;
}

/** Options for gVisor; `platform` is runsc's `--platform`. */
export interface GvisorRuntimeOptions extends OciRuntimeOptions {
  /** ptrace works everywhere; kvm is faster but hangs on some VMs. */
  platform?: "ptrace" | "kvm" | "systrap";
}

/** Runs containers in gVisor (runsc): a user-space kernel between the container and the host. */
export class GvisorRuntime extends OciRuntime {
  readonly name = "gvisor" as const;
  protected readonly binaryName = "runsc";
  private readonly platform: string;
  private nsenterPath: string | undefined;
  private sharedOptions: Promise<string[]> | undefined;
  // runsc's --network=sandbox fails on some kernels; --network=host inside the container's own namespace gives the
  // sandbox that namespace's interfaces instead, so runsc is started in it (nsenter) rather than told about it.
  // Every later runsc command for that container runs there too: the sandbox's control socket is an abstract
  // Unix socket, which belongs to the network namespace it was bound in.
  protected override readonly netnsInSpec = false;

  constructor(options: GvisorRuntimeOptions = {}) {
    super("/run/skiff/gvisor", options);
    this.platform = options.platform ?? "ptrace";
  }

  protected globalArgs(): string[] {
    return ["--root", this.rootDir, `--platform=${this.platform}`];
  }

  // --host-uds=all lets the runner connect to the worker's Unix socket in a bind-mounted directory.
  protected runArgs(spec: ContainerSpec, container: OciContainer): string[] {
    const network = spec.network === "none" ? "none" : "host";
    return [
      ...this.globalArgs(),
      "--host-uds=all",
      `--network=${network}`,
      "run",
      "--bundle",
      container.bundleDir,
      container.id,
    ];
  }

  protected override async commandLine(
    binary: string,
    args: string[],
    container: OciContainer,
  ): Promise<[string, string[]]> {
    // A namespace already gone (a stale container) leaves nothing to enter: run where we are.
    if (!container.network || !existsSync(container.network.netnsPath)) return [binary, args];
    this.nsenterPath ??= await findExecutable("nsenter");
    if (!this.nsenterPath) throw new Error("nsenter not found; private networking with gVisor needs util-linux.");
    return [this.nsenterPath, [`--net=${container.network.netnsPath}`, "--", binary, ...args]];
  }

  // By default the sandbox keeps one host handle per cached file and shares it between the application's opens:
  // rclone then sees no close() until the sandbox drops it (a commit while the container runs misses the file),
  // and a file read before a reload is read again through the old handle (old bytes). disable_file_handle_sharing
  // gives each application FD its own host FD. (Releases since 20240820 set it themselves on FUSE mounts.)
  protected override async sharedMountOptions(binary: string): Promise<string[]> {
    this.sharedOptions ??= runCommand(binary, ["--version"]).then((result) => {
      const date = runscReleaseDate(result.stdout);
      return date !== undefined && date >= FILE_HANDLE_SHARING_OPTION_SINCE ? ["disable_file_handle_sharing"] : [];
    });
    return this.sharedOptions;
  }

  /**
   * Whether mounts marked `sharedWithHost` get one host file per application open() with this runsc; without,
   * a commit while the container runs misses files it closed, and a file it read before a reload keeps its bytes.
   */
  async opensHostFilePerOpen(): Promise<boolean> {
    return (await this.sharedMountOptions(await this.binaryPath())).length > 0;
  }

  protected override async beforeRun(spec: ContainerSpec, container: OciContainer): Promise<void> {
    await createMemoryCgroup(container.cgroup, spec.memoryMiB * 1024 * 1024, spec.cpu);
  }

  // runsc deletes a cgroup it created as soon as the sandbox exits, taking the OOM count with it; a cgroup we
  // create (and limit) ourselves is joined but left in place, so the count can be read after exit.
  protected async release(container: OciContainer): Promise<void> {
    await this.control(container, ["delete", "--force", container.id]);
    await removeCgroup(container.cgroup);
  }
}
