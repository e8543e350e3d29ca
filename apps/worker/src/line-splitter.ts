import type { Readable } from "node:stream";

/** Calls `onLine` for each complete line of a stream, and for a trailing partial line at its end. */
export function forEachLine(stream: Readable, onLine: (line: string) => void): void {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop() ?? "";
    for (const part of parts) onLine(part);
  });
  stream.on("end", () => {
    if (rest) onLine(rest);
    rest = "";
  });
}
