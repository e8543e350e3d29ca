import type { ServerToWorker, WorkerMessage } from "@skiff/protocol";
import type { ImageService } from "./image-service.js";
import { imageContainerSpec } from "./images/index.js";
import type { ContainerRuntime } from "./runtime/types.js";
import { onTerminal, resizeTerminal } from "./shell-terminal.js";

type ShellMessage<T extends ServerToWorker["t"]> = Extract<ServerToWorker, { t: T }>;

/** What the shells work with. */
export interface ShellsOptions {
  /** Shells look into images the way build steps make them: on the build runtime. */
  runtime: ContainerRuntime;
  images: ImageService;
  /** Sends a shell's output and exit to the server. */
  send(message: WorkerMessage): void;
}

/** A shell this worker runs: its container, its input (once started), and its terminal's resizes. */
interface OpenShell {
  id: string;
  stdin?: NodeJS.WritableStream;
  /** Input that came before the shell started. */
  early: (Uint8Array | "eof")[];
  closed: boolean;
  /** A resize command is running; the size to set after it, if another came meanwhile. */
  resizing?: boolean;
  nextSize?: { rows: number; cols: number };
}

/** The shells (`skiff shell`) this worker runs, by session id: opened, fed, resized and closed by the server. */
export class Shells {
  private readonly open = new Map<string, OpenShell>();

  constructor(private readonly options: ShellsOptions) {}

  /**
   * A shell in a container of `image`: built first if needed, up to a failing step (the shell then opens
   * in the image before it). Its output and exit go back to the server.
   */
  async start(open: ShellMessage<"shell-open">): Promise<void> {
    const { sid, image, tty } = open;
    const { runtime, send } = this.options;
    const command = tty ? onTerminal(open.command, tty) : open.command;
    const output = (stream: "stdout" | "stderr" | "system", data: Uint8Array) =>
      send({ t: "shell-output", sid, stream, data });
    const system = (line: string) => output("system", Buffer.from(`${line}\n`));
    const id = `shell-${sid.slice(0, 8)}`;
    const shell: OpenShell = { id, early: [], closed: false };
    this.open.set(sid, shell);
    try {
      const prepared = await this.options.images.prepare(image, system, { upToFailure: true, secrets: open });
      try {
        if (shell.closed) throw new Error("the shell was closed before it started");
        const spec = imageContainerSpec(prepared);
        const handle = await runtime.start({
          ...spec,
          ...(tty ? { env: { ...spec.env, TERM: tty.term } } : {}),
          id,
          command,
          cpu: 1,
          memoryMiB: 1024,
          network: "private",
          stdin: true,
        });
        if (handle.stdin) {
          shell.stdin = handle.stdin;
          for (const early of shell.early.splice(0)) early === "eof" ? handle.stdin.end() : handle.stdin.write(early);
          handle.stdin.on("error", () => {}); // the command may exit without reading its input
        }
        handle.stdout.on("data", (chunk: Buffer) => output("stdout", chunk));
        handle.stderr.on("data", (chunk: Buffer) => output("stderr", chunk));
        const exit = await handle.exited;
        send({ t: "shell-exit", sid, code: exit.exitCode });
      } finally {
        prepared.image.release();
      }
    } catch (error) {
      send({ t: "shell-exit", sid, code: null, error: (error as Error).message });
    } finally {
      this.open.delete(sid);
    }
  }

  /** Feeds a shell's stdin, or keeps the input until its container starts. */
  input(message: ShellMessage<"shell-input">): void {
    const shell = this.open.get(message.sid);
    if (!shell) return;
    // Input typed (or piped) while the image builds waits for the container.
    if (message.data) shell.stdin ? shell.stdin.write(message.data) : shell.early.push(message.data);
    if (message.eof) shell.stdin ? shell.stdin.end() : shell.early.push("eof");
  }

  /**
   * Resizes a shell's terminal one command at a time, the latest size last: a window dragged sends sizes
   * in bursts, and two commands run at once could finish in either order, leaving an older size.
   */
  resize(message: ShellMessage<"shell-resize">): void {
    const shell = this.open.get(message.sid);
    if (!shell?.stdin) return;
    shell.nextSize = { rows: message.rows, cols: message.cols };
    if (shell.resizing) return;
    shell.resizing = true;
    void (async () => {
      while (shell.nextSize && !shell.closed) {
        const size = shell.nextSize;
        shell.nextSize = undefined;
        await this.options.runtime.exec?.(shell.id, resizeTerminal(size.rows, size.cols)).catch(() => {});
      }
      shell.resizing = false;
    })();
  }

  /** Ends a shell: kills its container, or keeps one still being prepared from starting. */
  close(message: ShellMessage<"shell-close">): void {
    const shell = this.open.get(message.sid);
    if (shell) shell.closed = true;
    if (shell?.stdin) void this.options.runtime.kill(shell.id);
  }
}
