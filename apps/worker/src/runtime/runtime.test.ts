import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll } from "vitest";
import { GvisorRuntime } from "./gvisor.js";
import { ProcessRuntime } from "./process.js";
import { RuncRuntime } from "./runc.js";
import { describeRuntimeConformance } from "./runtime.conformance.js";

const stateRoot = `/run/skiff-test/${process.pid}`;
const gvisorState = join(stateRoot, "gvisor");
const runcState = join(stateRoot, "runc");

afterAll(async () => {
  await rm(stateRoot, { recursive: true, force: true });
});

await describeRuntimeConformance("gvisor", () => new GvisorRuntime({ stateDir: gvisorState }), {
  isolated: true,
  stateDir: gvisorState,
});
await describeRuntimeConformance("runc", () => new RuncRuntime({ stateDir: runcState }), {
  isolated: true,
  stateDir: runcState,
});
await describeRuntimeConformance("process", () => new ProcessRuntime({ quiet: true }), { isolated: false });
