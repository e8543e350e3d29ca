import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { forEachLine, MAX_LINE } from "./line-splitter.js";

async function linesOf(chunks: string[]): Promise<string[]> {
  const stream = new PassThrough();
  const lines: string[] = [];
  forEachLine(stream, (line) => lines.push(line));
  const ended = new Promise((resolve) => stream.on("end", resolve));
  for (const chunk of chunks) stream.write(chunk);
  stream.end();
  await ended;
  return lines;
}

describe("forEachLine", () => {
  it("splits lines across chunks and keeps a trailing partial line", async () => {
    expect(await linesOf(["a\nb", "c\n", "", "\nd"])).toEqual(["a", "bc", "", "d"]);
  });

  it("cuts a line longer than MAX_LINE into pieces of MAX_LINE, whatever the chunks", async () => {
    const long = "x".repeat(MAX_LINE * 2 + 10);
    const chunks = long.match(/.{1,1000}/g)!;
    const lines = await linesOf([...chunks, "\nshort\n"]);
    expect(lines.map((line) => line.length)).toEqual([MAX_LINE, MAX_LINE, 10, 5]);
    expect(lines.slice(0, 3).join("")).toBe(long);
  });

  it("reads a 64 MiB line without a newline in bounded pieces", async () => {
    const chunk = "y".repeat(1024 * 1024);
    const lines = await linesOf(Array.from({ length: 64 }, () => chunk));
    expect(lines.length).toBe((64 * 1024 * 1024) / MAX_LINE);
    expect(lines.every((line) => line.length === MAX_LINE)).toBe(true);
  });
});
