export * from "./constants.js";
export * from "./error-code.js";
export * from "./errors.js";
export * from "./frame.js";
export * from "./group-by.js";
export * from "./manifest.js";
export * from "./messages.js";
export * from "./units.js";
