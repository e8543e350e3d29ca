export { prepareCommand } from "./prepare.js";
export { serverCommand, upCommand, workerCommand } from "./up.js";
