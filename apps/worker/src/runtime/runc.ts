import { type OciContainer, OciRuntime, type OciRuntimeOptions } from "./oci-runtime.js";
import type { ContainerSpec } from "./types.js";

/** Runs containers with runc: fast, namespaces + cgroups, shares the host kernel. */
export class RuncRuntime extends OciRuntime {
  readonly name = "runc" as const;
  protected readonly binaryName = "runc";

  constructor(options: OciRuntimeOptions = {}) {
    super("/run/skiff/runc", options);
  }

  protected globalArgs(): string[] {
    return ["--root", this.rootDir];
  }

  // --keep leaves the stopped container (and its cgroup) in place so the OOM count can be read before delete.
  protected runArgs(_spec: ContainerSpec, container: OciContainer): string[] {
    return [...this.globalArgs(), "run", "--keep", "--bundle", container.bundleDir, container.id];
  }

  protected async release(container: OciContainer): Promise<void> {
    await this.control(container, ["delete", "--force", container.id]);
  }
}
