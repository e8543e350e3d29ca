import type { ImageSecrets, ImageSpec, ServerToClient, Terminal, WorkerMessage } from "@skiff/protocol";
import { ApiError } from "../../errors.js";
import type { EngineState } from "../state.js";
import type { WorkerConn } from "../workers.js";
import type { BuildVolumes } from "./build-grants.js";
import type { Systems } from "./systems.js";

/** What a shell sends its client: its output and its exit. */
export type ShellMessage = Extract<ServerToClient, { t: "shell-output" | "shell-exit" }>;

type BuildMessage = Extract<WorkerMessage, { t: "build-log" | "build-done" }>;

/** Image builds and shells relayed to workers: which worker runs each, and where its output goes. */
export class RelaySystem {
  /** Image builds asked of workers, by request id. */
  private readonly builds = new Map<
    number,
    { workerId: string; onLines: (lines: string[]) => void; done: (error?: string, exported?: string) => void }
  >();
  private nextBuild = 1;
  /** Open shells: the worker running each, where its output goes, and the grant its image's build had. */
  private readonly shells = new Map<
    string,
    { worker: WorkerConn; send: (message: ShellMessage) => void; grant: string | undefined }
  >();

  constructor(
    private readonly state: EngineState,
    private readonly deps: Pick<Systems, "builds">,
  ) {}

  /**
   * Builds an image on a worker now (what a container start would otherwise do first); `onLines` gets the
   * build's output. Resolves once built, rejects with the failed step. The volumes its steps mount
   * (`volumes`) are granted to this build until it ends.
   */
  async buildImage(
    image: ImageSpec,
    onLines: (lines: string[]) => void,
    options: { export?: boolean; secrets?: ImageSecrets; volumes?: BuildVolumes | undefined } = {},
  ): Promise<string | undefined> {
    // Where a small container would go (best fit): builds land where containers are likely to run.
    const worker = this.state.workers.place({ cpu: 0.001, memoryMiB: 1 });
    if (!worker) {
      throw new ApiError("UNAVAILABLE", "no worker is connected to build on: start one with `skiff worker`");
    }
    const grant = options.volumes ? await this.deps.builds.grant(worker, options.volumes) : undefined;
    const rid = this.nextBuild++;
    return new Promise((resolve, reject) => {
      this.builds.set(rid, {
        workerId: worker.id,
        onLines,
        done: (error, exported) => {
          this.builds.delete(rid);
          const ended = grant ? this.deps.builds.end(grant.id).catch(() => {}) : Promise.resolve();
          void ended.then(() => (error ? reject(new ApiError("BAD_REQUEST", error)) : resolve(exported)));
        },
      });
      worker.send({
        t: "build",
        rid,
        image,
        export: options.export ?? false,
        ...options.secrets,
        ...(grant ? { buildVolumes: grant.buildVolumes } : {}),
      });
    });
  }

  /** A worker's word on a build: lines of its output, or its end. */
  buildMessage(message: BuildMessage): void {
    const build = this.builds.get(message.rid);
    if (message.t === "build-log") build?.onLines(message.lines);
    else build?.done(message.error, message.exported);
  }

  /**
   * Opens a shell in a container of `image` on a worker; its output and exit go to `send`. Building the
   * image first reaches the volumes its steps mount (`volumes`) until the shell ends.
   */
  async openShell(
    shell: { sid: string; image: ImageSpec; command: string[]; tty?: Terminal | undefined },
    send: (message: ShellMessage) => void,
    secrets: ImageSecrets = {},
    volumes?: BuildVolumes,
  ): Promise<void> {
    const worker = this.state.workers.place({ cpu: 1, memoryMiB: 1024 });
    if (!worker) throw new ApiError("UNAVAILABLE", "no worker has room for a shell: start one with `skiff worker`");
    const grant = volumes ? await this.deps.builds.grant(worker, volumes) : undefined;
    this.shells.set(shell.sid, { worker, send, grant: grant?.id });
    const { sid, image, command, tty } = shell;
    worker.send({
      t: "shell-open",
      sid,
      image,
      command,
      ...(tty ? { tty } : {}),
      ...secrets,
      ...(grant ? { buildVolumes: grant.buildVolumes } : {}),
    });
  }

  /** A shell's output or exit from its worker, passed on to its client. */
  shellMessage(message: ShellMessage): void {
    this.shells.get(message.sid)?.send(message);
    if (message.t === "shell-exit") this.forgetShell(message.sid);
  }

  /** Resizes a shell's terminal. */
  shellResize(sid: string, rows: number, cols: number): void {
    this.shellOf(sid).worker.send({ t: "shell-resize", sid, rows, cols });
  }

  /** Passes a client's keystrokes (or the end of its input) to a shell. */
  shellInput(sid: string, data: Uint8Array | undefined, eof: boolean): void {
    this.shellOf(sid).worker.send({ t: "shell-input", sid, ...(data ? { data } : {}), eof });
  }

  /** Ends a shell whose client went away. */
  closeShell(sid: string): void {
    const shell = this.shells.get(sid);
    this.forgetShell(sid);
    shell?.worker.send({ t: "shell-close", sid });
  }

  /** Ends the shells and builds of a worker that disconnected. */
  workerGone(worker: WorkerConn): void {
    for (const [sid, shell] of this.shells) {
      if (shell.worker !== worker) continue;
      shell.send({ t: "shell-exit", sid, code: null, error: "the worker running the shell disconnected" });
      this.forgetShell(sid);
    }
    for (const build of [...this.builds.values()]) {
      if (build.workerId === worker.id) build.done("the worker building the image disconnected; build again");
    }
  }

  /** A shell is over: the grant of its image's build, if it had one, ends. */
  private forgetShell(sid: string): void {
    const grant = this.shells.get(sid)?.grant;
    this.shells.delete(sid);
    if (grant) void this.deps.builds.end(grant).catch(() => {});
  }

  private shellOf(sid: string): { worker: WorkerConn } {
    const shell = this.shells.get(sid);
    if (!shell) throw new ApiError("NOT_FOUND", `no shell ${sid}: it has ended`);
    return shell;
  }
}
