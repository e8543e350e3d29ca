import { existsSync } from "node:fs";
import type { Readable } from "node:stream";
import { findExecutable } from "../runtime/command.js";
import type { ContainerExit, ContainerHandle } from "../runtime/types.js";

/** Why volume mount tests cannot run here, or undefined when they can (root, rclone, fusermount, /dev/fuse). */
export async function fuseUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return "needs root";
  if (!existsSync("/dev/fuse")) return "no /dev/fuse";
  if (!(await findExecutable("rclone"))) return "rclone missing: run scripts/setup.sh";
  if (!(await findExecutable("fusermount3")) && !(await findExecutable("fusermount"))) return "fusermount missing";
  return undefined;
}

/** Collects a stream's text. */
export function collect(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => (text += chunk));
    stream.on("end", () => resolve(text));
    stream.on("error", () => resolve(text));
  });
}

/** Resolves with the first line a stream writes that matches `pattern` (its output is still collected elsewhere). */
export function waitForLine(stream: Readable, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern} in: ${text}`)), timeoutMs);
    const onData = (chunk: Buffer | string) => {
      text += String(chunk);
      const line = text.split("\n").find((candidate) => pattern.test(candidate));
      if (line !== undefined) {
        clearTimeout(timer);
        stream.off("data", onData);
        resolve(line);
      }
    };
    stream.on("data", onData);
  });
}

/** A finished container's output. */
export interface Finished {
  stdout: string;
  stderr: string;
  exit: ContainerExit;
}

export async function finish(handle: ContainerHandle): Promise<Finished> {
  const [stdout, stderr, exit] = await Promise.all([collect(handle.stdout), collect(handle.stderr), handle.exited]);
  return { stdout, stderr, exit };
}
