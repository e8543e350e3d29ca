import { createMemoryCgroup, removeCgroup } from "./cgroup.js";
import { runCommand } from "./command.js";
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

  constructor(options: GvisorRuntimeOptions = {}) {
    super("/run/skiff/gvisor", options);
    this.platform = options.platform ?? "ptrace";
  }

  protected globalArgs(): string[] {
    return ["--root", this.rootDir, `--platform=${this.platform}`];
  }

  // --host-uds=all lets the runner connect to the worker's Unix socket in a bind-mounted directory.
  protected runArgs(spec: ContainerSpec, container: OciContainer): string[] {
    const network = spec.network === "host" ? "host" : "none";
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

  // runsc deletes a cgroup it created as soon as the sandbox exits, taking the OOM count with it; a cgroup we
  // create (and limit) ourselves is joined but left in place, so the count can be read after exit.
  protected override async beforeRun(spec: ContainerSpec, container: OciContainer): Promise<void> {
    await createMemoryCgroup(container.cgroup, spec.memoryMiB * 1024 * 1024, spec.cpu);
  }

  protected async release(container: OciContainer): Promise<void> {
    await runCommand(await this.binaryPath(), [...this.globalArgs(), "delete", "--force", container.id]);
    await removeCgroup(container.cgroup);
  }
}
