import { GvisorRuntime } from "./gvisor.js";
import { ProcessRuntime } from "./process.js";
import { RuncRuntime } from "./runc.js";
import type { ContainerRuntime, RuntimeName } from "./types.js";

/** Creates the runtime with this name, with its default state directory. */
export function createRuntime(name: RuntimeName): ContainerRuntime {
  switch (name) {
    case "gvisor":
      return new GvisorRuntime();
    case "runc":
      return new RuncRuntime();
    case "process":
      return new ProcessRuntime();
  }
}

/** The strongest runtime that can run here: gvisor, else runc, else process (which warns that it isolates nothing). */
export async function detectRuntime(): Promise<ContainerRuntime> {
  for (const candidate of [new GvisorRuntime(), new RuncRuntime()]) {
    if ((await candidate.available()).ok) return candidate;
  }
  return new ProcessRuntime();
}
