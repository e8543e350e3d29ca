import { join } from "node:path";
import { GvisorRuntime } from "./gvisor.js";
import { ProcessRuntime } from "./process.js";
import { RuncRuntime } from "./runc.js";
import type { ContainerRuntime, RuntimeName } from "./types.js";

export interface RuntimeChoice {
  /** Holds the runtime's container state; give each worker on a host its own. */
  stateRoot?: string;
  /** Host TCP ports containers on a private network may connect to. */
  allowHostPorts?: readonly number[];
  /** Path of the runsc binary for gvisor; default: the environment's SKIFF_RUNSC, else runsc on PATH. */
  runsc?: string;
}

/**
 * Creates the runtime with this name. `stateRoot` holds its container state; give each worker on a host
 * its own, since a worker cleans up everything there that it did not start.
 */
export function createRuntime(name: RuntimeName, options: RuntimeChoice = {}): ContainerRuntime {
  const oci = {
    ...(options.stateRoot ? { stateDir: join(options.stateRoot, name) } : {}),
    ...(options.allowHostPorts ? { allowHostPorts: options.allowHostPorts } : {}),
  };
  switch (name) {
    case "gvisor": {
      // E.g. a newer release unpacked beside the system's (/usr/bin/runsc stays as the package left it).
      const runsc = options.runsc || process.env.SKIFF_RUNSC;
      return new GvisorRuntime({ ...oci, ...(runsc ? { binary: runsc } : {}) });
    }
    case "runc":
      return new RuncRuntime(oci);
    case "process":
      return new ProcessRuntime();
  }
}

/** The strongest runtime that can run here: gvisor, else runc, else process (which warns that it isolates nothing). */
export async function detectRuntime(options: RuntimeChoice = {}): Promise<ContainerRuntime> {
  for (const candidate of [createRuntime("gvisor", options), createRuntime("runc", options)]) {
    if ((await candidate.available()).ok) return candidate;
  }
  return new ProcessRuntime();
}
