import type { Readable } from "node:stream";

/**
 * The longest line passed on whole, in UTF-16 units: a container that writes more without a newline has it
 * cut into pieces of this size, so one endless line can neither grow the worker's memory nor outgrow a frame.
 */
export const MAX_LINE = 16 * 1024;

/**
 * Calls `onLine` for each complete line of a stream, and for a trailing partial line at its end; resolves once
 * the stream ended (or failed) and every line was passed on.
 */
export function forEachLine(stream: Readable, onLine: (line: string) => void): Promise<void> {
  // Pieces of the line not yet ended, joined once it ends: joining at every chunk is quadratic in its length.
  let pieces: string[] = [];
  let length = 0;
  const take = (text: string) => {
    let rest = text;
    while (length + rest.length >= MAX_LINE) {
      const cut = MAX_LINE - length;
      pieces.push(rest.slice(0, cut));
      onLine(pieces.join(""));
      pieces = [];
      length = 0;
      rest = rest.slice(cut);
    }
    if (rest) {
      pieces.push(rest);
      length += rest.length;
    }
  };
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    const parts = chunk.split("\n");
    const last = parts.pop() ?? "";
    for (const part of parts) {
      take(part);
      onLine(pieces.join(""));
      pieces = [];
      length = 0;
    }
    take(last);
  });
  return new Promise((resolve) => {
    stream.on("end", () => {
      if (length > 0) onLine(pieces.join(""));
      pieces = [];
      length = 0;
      resolve();
    });
    stream.on("error", () => resolve());
    stream.on("close", () => resolve());
  });
}
