import { describe, expect, it } from "vitest";
import { buildOciSpec } from "./oci-spec.js";
import type { ContainerSpec } from "./types.js";

const base: ContainerSpec = {
  id: "c1",
  rootfs: "/rootfs",
  command: ["/bin/true"],
  env: { A: "1" },
  cwd: "/",
  mounts: [
    { source: "/host/ro", target: "/ro", readonly: true },
    { source: "/host/rw", target: "/rw", readonly: false },
  ],
  cpu: 0.5,
  memoryMiB: 128,
  network: "none",
};

describe("buildOciSpec", () => {
  it("sets limits, a relative cgroup path and a default PATH", () => {
    const oci = buildOciSpec(base, "/bundle/rootfs", "skiff/c1");
    expect(oci.linux.resources.memory.limit).toBe(128 * 1024 * 1024);
    expect(oci.linux.resources.cpu).toEqual({ quota: 50_000, period: 100_000 });
    expect(oci.linux.cgroupsPath).toBe("skiff/c1");
    expect(oci.process.env).toEqual([expect.stringMatching(/^PATH=/), "A=1"]);
  });

  it("binds mounts read-only only when asked", () => {
    const mounts = buildOciSpec(base, "/r", "skiff/c1").mounts.filter((mount) => mount.type === "bind");
    expect(mounts.map((mount) => [mount.destination, mount.options.at(-1)])).toEqual([
      ["/ro", "ro"],
      ["/rw", "rw"],
    ]);
  });

  it("gives the runtime's shared-mount options only to mounts shared with the host", () => {
    const mounts = [...base.mounts, { source: "/host/vol", target: "/vol", readonly: false, sharedWithHost: true }];
    const options = buildOciSpec({ ...base, mounts }, "/r", "x", undefined, ["disable_file_handle_sharing"])
      .mounts.filter((mount) => mount.type === "bind")
      .map((mount) => [mount.destination, mount.options]);
    expect(options).toEqual([
      ["/ro", ["rbind", "nosuid", "nodev", "ro"]],
      ["/rw", ["rbind", "nosuid", "nodev", "rw"]],
      ["/vol", ["rbind", "nosuid", "nodev", "disable_file_handle_sharing", "rw"]],
    ]);
  });

  it("adds a network namespace only for network none", () => {
    const types = (network: ContainerSpec["network"]) =>
      buildOciSpec({ ...base, network }, "/r", "x").linux.namespaces.map((ns) => ns.type);
    expect(types("none")).toContain("network");
    expect(types("host")).not.toContain("network");
  });
});
