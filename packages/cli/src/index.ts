export type { BlobLocation } from "./blob-url.js";
export type { Config } from "./config.js";
export { clearEmbeddedState, writeEmbeddedState } from "./embedded.js";
export { dim, red, say } from "./output.js";
export { buildId, runnerDir } from "./paths.js";
export { type HostCommands, runSkiff } from "./program.js";
