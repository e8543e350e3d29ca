import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll } from "vitest";
import { ProcessRuntime } from "./process.js";
import { RuncRuntime } from "./runc.js";
import { describeRuntimeConformance } from "./runtime.conformance.js";
import { createRuntime } from "./select-runtime.js";

const stateRoot = `/run/skiff-test/${process.pid}`;
const gvisorState = join(stateRoot, "gvisor");
const runcState = join(stateRoot, "runc");

afterAll(async () => {
  await rm(stateRoot, { recursive: true, force: true });
});

// createRuntime, so that SKIFF_RUNSC picks the runsc binary (its state goes to gvisorState).
await describeRuntimeConformance("gvisor", () => createRuntime("gvisor", { stateRoot }), {
  isolated: true,
  stateDir: gvisorState,
});
await describeRuntimeConformance("runc", () => new RuncRuntime({ stateDir: runcState }), {
  isolated: true,
  stateDir: runcState,
});
await describeRuntimeConformance("process", () => new ProcessRuntime({ quiet: true }), { isolated: false });
