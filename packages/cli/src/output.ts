import type { LogLine } from "@skiff/protocol";

const color = process.stderr.isTTY && !process.env.NO_COLOR;
const paint = (code: number) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const cyan = paint(36);

/** A status line from the CLI itself, on stderr so stdout stays the program's. */
export function say(line: string): void {
  process.stderr.write(`${dim("skiff")} ${line}\n`);
}

/** Prints container logs prefixed by function and container, stdout to stdout and stderr to stderr. */
export function printLogs(lines: LogLine[]): void {
  for (const line of lines) {
    const prefix = cyan(`[${line.functionName} ${line.containerId.slice(3, 9)}]`);
    if (line.stream === "stderr") process.stderr.write(`${prefix} ${line.line}\n`);
    else process.stdout.write(`${prefix} ${line.line}\n`);
  }
}

/** An error as the user should see it: the message and the (source-mapped) stack, without SDK frames. */
export function formatError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const stack = error.stack ?? `${error.name}: ${error.message}`;
  return stack
    .split("\n")
    .filter((line) => !/node_modules|packages\/sdk\/src|node:internal|\/\.skiff\/runner\//.test(line))
    .join("\n");
}
