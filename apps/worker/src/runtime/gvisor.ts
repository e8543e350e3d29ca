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
  // A checkpointable container is the exception: gVisor cannot save the host's network stack, so it runs on
  // gVisor's own (--network=sandbox), which takes the namespace's interfaces from config.json.
  protected override netnsInSpec(spec: ContainerSpec): boolean {
    return spec.checkpointable === true;
  }

  constructor(options: GvisorRuntimeOptions = {}) {
    super("/run/skiff/gvisor", options);
    this.platform = options.platform ?? "ptrace";
  }

  protected globalArgs(): string[] {
    return ["--root", this.rootDir, `--platform=${this.platform}`];
  }

  // --host-uds=all lets the runner connect to the worker's Unix socket in a bind-mounted directory.
  protected runArgs(spec: ContainerSpec, container: OciContainer): string[] {
    const network = spec.network === "none" ? "none" : spec.checkpointable ? "sandbox" : "host";
    return [
      ...this.globalArgs(),
      "--host-uds=all",
      `--network=${network}`,
      // A TCP connection open at a checkpoint is reset on restore rather than refusing the checkpoint.
      ...(spec.checkpointable ? ["--net-disconnect-ok"] : []),
      ...(spec.restoreFrom ? ["restore", "--image-path", spec.restoreFrom] : ["run"]),
      "--bundle",
      container.bundleDir,
      container.id,
    ];
  }

  override async checkpoint(id: string, dir: string): Promise<void> {
    const container = this.runningContainer(id);
    if (!container?.checkpointable)
      throw new Error(`container ${id} is not running, or was not started checkpointable`);
    const result = await this.control(container, ["checkpoint", "--compression=none", "--image-path", dir, id]);
    if (result.code !== 0) throw new Error(`runsc checkpoint failed: ${firstLine(result.stderr)}`);
  }

  protected override async commandLine(
    binary: string,
    args: string[],
    container: OciContainer,
  ): Promise<[string, string[]]> {
    if (container.checkpointable) return hideRootNetnsMarker(binary, args);
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

/**
 * Runs runsc where /proc/sys/net is hidden (a private mount namespace with an empty tmpfs over it). Before
 * release-20240801, runsc decides that a namespace is the host's own when /proc/sys/net/core/rmem_default
 * exists, which on newer kernels it does in every namespace: `--network=sandbox` then refuses any namespace.
 * Hidden, the check passes; the namespace in config.json is a container's own (network.ts made it).
 */
function hideRootNetnsMarker(binary: string, args: string[]): [string, string[]] {
  return [
    "unshare",
    [
      "--mount",
      "--propagation",
      "private",
      "--",
      "/bin/sh",
      "-c",
      'mount -t tmpfs -o size=4k skiff-hide /proc/sys/net && exec "$0" "$@"',
      binary,
      ...args,
    ],
  ];
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}
