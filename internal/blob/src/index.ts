export { sha256 } from "./blob-checks.js";
export * from "./blob-store.js";
export * from "./format-bytes.js";
export * from "./fs-blob-store.js";
