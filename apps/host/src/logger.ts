import type { Config } from "@skiff/cli";
import pino, { type Logger } from "pino";
import { formatLogLine } from "./log-format.js";

/** pino to stderr: JSON for files and pipes (the embedded log), readable lines on a terminal. */
export function makeLogger(config: Config, name: string): Logger {
  const options = { name, level: config.SKIFF_LOG_LEVEL };
  if (!process.stderr.isTTY) return pino(options, pino.destination(2));
  return pino(options, { write: (json: string) => process.stderr.write(`${formatLogLine(json.trimEnd())}\n`) });
}
