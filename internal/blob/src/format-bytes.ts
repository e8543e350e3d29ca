export { formatBytes } from "@skiff/protocol/units";
