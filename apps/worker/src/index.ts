export { WorkerAgent, type WorkerOptions } from "./agent.js";
export * from "./runtime/index.js";
