import { dim, red } from "@skiff/cli";

const LEVELS: Record<number, string> = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" };
const HIDDEN = new Set(["level", "time", "pid", "hostname", "name", "msg", "v"]);

/** One pino JSON record as a terminal line: `12:04:05 warn  worker disconnected worker=vm`. */
export function formatLogLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = new Date(Number(record.time)).toTimeString().slice(0, 8);
  const level = LEVELS[Number(record.level)] ?? String(record.level);
  const fields = Object.entries(record)
    .filter(([key]) => !HIDDEN.has(key))
    .map(([key, value]) => {
      if (key === "err" && typeof value === "object" && value)
        return `\n${(value as { stack?: string }).stack ?? JSON.stringify(value)}`;
      return `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`;
    });
  const label = level === "error" || level === "fatal" ? red(level.padEnd(5)) : level.padEnd(5);
  return `${dim(time)} ${label} ${String(record.msg ?? "")}${fields.length ? ` ${dim(fields.join(" "))}` : ""}`;
}
