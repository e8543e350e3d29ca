import { existsSync } from "node:fs";
import { createMemoryCgroup, removeCgroup } from "./cgroup.js";
import { findExecutable } from "./command.js";
import { type OciContainer, OciRuntime, type OciRuntimeOptions } from "./oci-runtime.js";
import type { ContainerSpec } from "./types.js";

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
