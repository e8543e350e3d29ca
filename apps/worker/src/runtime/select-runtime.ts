import { join } from "node:path";
import { GvisorRuntime } from "./gvisor.js";
import { ProcessRuntime } from "./process.js";
import { RuncRuntime } from "./runc.js";
import type { ContainerRuntime, RuntimeName } from "./types.js";

/**
 * Creates the runtime with this name. `stateRoot` holds its container state; give each worker on a host
 * its own, since a worker cleans up everything there that it did not start.
 */
export function createRuntime(name: RuntimeName, options: { stateRoot?: string } = {}): ContainerRuntime {
  const stateDir = options.stateRoot ? join(options.stateRoot, name) : undefined;
  switch (name) {
    case "gvisor":
      return new GvisorRuntime(stateDir ? { stateDir } : {});
    case "runc":
      return new RuncRuntime(stateDir ? { stateDir } : {});
    case "process":
      return new ProcessRuntime();
  }
}

/** The strongest runtime that can run here: gvisor, else runc, else process (which warns that it isolates nothing). */
export async function detectRuntime(options: { stateRoot?: string } = {}): Promise<ContainerRuntime> {
  for (const candidate of [createRuntime("gvisor", options), createRuntime("runc", options)]) {
    if ((await candidate.available()).ok) return candidate;
  }
  return new ProcessRuntime();
}
