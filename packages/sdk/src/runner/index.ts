export { type RunnerOptions, runRunner } from "./runner.js";
