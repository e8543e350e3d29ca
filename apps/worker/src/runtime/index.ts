export { GvisorRuntime, type GvisorRuntimeOptions } from "./gvisor.js";
export { ensureNodeDist } from "./node-dist.js";
export type { OciRuntimeOptions } from "./oci-runtime.js";
export { ProcessRuntime } from "./process.js";
export { ensureBaseRootfs } from "./rootfs.js";
export { RuncRuntime } from "./runc.js";
export { createRuntime, detectRuntime } from "./select-runtime.js";
export type * from "./types.js";
