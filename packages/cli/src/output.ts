import type { LogLine } from "@skiff/protocol";

const color = process.stderr.isTTY && !process.env.NO_COLOR;
const paint = (code: number) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
export const bold = paint(1);
export const dim = paint(2);
export const red = paint(31);
export const green = paint(32);
export const cyan = paint(36);
export const yellow = paint(33);

/** A status line from the CLI itself, on stderr so stdout stays the program's. */
export function say(line: string): void {
  progress.clear();
  process.stderr.write(`${dim("skiff")} ${line}\n`);
}

/**
 * One live line on a terminal's stderr (e.g. `square.map 532/1000`), redrawn at most every 100 ms and
 * cleared before anything else is printed. Silent when stderr is not a terminal.
 */
class ProgressLine {
  private text = "";
  private shown = false;
  private lastDraw = 0;
  private readonly enabled = Boolean(process.stderr.isTTY);

  update(text: string, force = false): void {
    if (!this.enabled) return;
    this.text = text;
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    process.stderr.write(`\r\x1b[2K${dim("skiff")} ${text}`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    process.stderr.write("\r\x1b[2K");
    this.shown = false;
  }

  /** Draws the line again after other output, if one is active. */
  restore(): void {
    if (this.text) this.update(this.text, true);
  }

  done(): void {
    this.clear();
    this.text = "";
  }
}

export const progress = new ProgressLine();

/** Prints container logs prefixed by function and container, stdout to stdout and stderr to stderr. */
export function printLogs(lines: LogLine[]): void {
  progress.clear();
  for (const line of lines) {
    const prefix = cyan(`[${line.functionName} ${line.containerId.slice(3, 9)}]`);
    if (line.stream === "stderr") process.stderr.write(`${prefix} ${line.line}\n`);
    else process.stdout.write(`${prefix} ${line.line}\n`);
  }
  progress.restore();
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

/**
 * Ends the process once what was written to stdout and stderr has left: `process.exit` drops writes still
 * queued for a pipe (a reader slower than the logs, such as `skiff run … | less`), which cut off the last lines.
 */
export async function exitWhenFlushed(code: number): Promise<never> {
  const flushed = (stream: NodeJS.WriteStream) =>
    new Promise<void>((resolve) => {
      if (stream.destroyed || !stream.writable) resolve();
      else stream.write("", () => resolve());
    });
  await Promise.race([
    Promise.all([flushed(process.stdout), flushed(process.stderr)]),
    new Promise((resolve) => setTimeout(resolve, 30_000).unref()),
  ]);
  process.exit(code);
}
