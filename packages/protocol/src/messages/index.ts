export * from "./client.js";
export * from "./runner.js";
export * from "./shared.js";
export * from "./worker.js";
