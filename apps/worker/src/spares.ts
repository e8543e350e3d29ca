import { randomUUID } from "node:crypto";
import { copyFile, link, mkdir, readdir, rm } from "node:fs/promises";
import type { Server, Socket } from "node:net";
import { join } from "node:path";
import { encodeMessage, type SpareAssignment, writeFrames } from "@skiff/protocol";
import type { Logger } from "pino";
import { listen } from "./listen.js";
import type { ContainerHandle, ContainerRuntime, ContainerSpec } from "./runtime/types.js";

/** How long a spare nobody took waits before it is stopped. */
const SPARE_IDLE_MS = 10 * 60_000;
/** How long a spare may take to boot before it is given up. */
const SPARE_BOOT_MS = 60_000;

/** Where a spare's files live on the host, and where they are in it. */
export const SPARE_SOCKET = "spare.sock";

/** A runner booted ahead, waiting for a function's code. */
export interface Spare {
  /** The runtime's id of its container. */
  id: string;
  handle: ContainerHandle;
  /** On the host: bound at /.skiff/sock (the session listens here) and /.skiff/bundle (its code goes here). */
  sockDir: string;
  bundleDir: string;
  /**
   * Hands it a function: the code is linked into its bundle directory, then its environment is sent. The caller
   * listens on runner.sock in `sockDir` first: the runner connects there next.
   */
  assign(bundleDir: string, env: Record<string, string>): Promise<void>;
  /** Removes its directories, once its container has exited. */
  release(): Promise<void>;
}

/** What a spare is booted from: its spec, with its own id and directories. */
export type SpareSpec = (id: string, dirs: { sockDir: string; bundleDir: string }) => ContainerSpec;

interface Waiting {
  spare: Spare;
  connection: Socket;
  idle: NodeJS.Timeout;
}

/**
 * Spare runners: containers booted ahead (Node started, the runner loaded, no code, no secrets), one per recently
 * used key (image, cpu, memory). A container start whose key has one takes it instead of booting: it only loads
 * its code then. A spare serves one container for good (it is never returned); taking one boots the next.
 */
export class SpareRunners {
  private readonly ready = new Map<string, Waiting>();
  /** Spares handed to a container: that container's session releases their directories. */
  private readonly taken = new Set<string>();
  private readonly booting = new Map<string, Promise<void>>();
  /** Keys in the order they were last wanted, oldest first. */
  private readonly recent: string[] = [];
  private closed = false;

  constructor(
    private readonly options: {
      runtime: ContainerRuntime;
      dir: string;
      log: Logger;
      /** How many keys keep a spare (0: none). */
      keys: number;
    },
  ) {}

  /** Removes what spares of an earlier worker left (their containers went with the runtime's cleanupStale). */
  async cleanup(): Promise<void> {
    await rm(this.options.dir, { recursive: true, force: true });
  }

  /**
   * The spare for `key`, if one is ready or booting (a booting one is further along than a new boot would be);
   * it is the caller's now, and another is booted for next time.
   */
  async take(key: string, spec: SpareSpec): Promise<Spare | undefined> {
    await this.booting.get(key);
    const waiting = this.ready.get(key);
    if (waiting) {
      this.ready.delete(key);
      clearTimeout(waiting.idle);
      this.taken.add(waiting.spare.id);
    }
    this.want(key, spec);
    return waiting?.spare;
  }

  /** Keeps a spare ready for `key` from now on (booted in the background), for the most recent keys. */
  want(key: string, spec: SpareSpec): void {
    if (this.closed || this.options.keys <= 0) return;
    const at = this.recent.indexOf(key);
    if (at >= 0) this.recent.splice(at, 1);
    this.recent.push(key);
    for (const old of this.recent.splice(0, Math.max(0, this.recent.length - this.options.keys))) this.drop(old);
    if (this.ready.has(key) || this.booting.has(key)) return;
    const booted = this.boot(key, spec)
      .catch((error: Error) => this.options.log.warn({ err: error }, "a spare runner did not start"))
      .finally(() => this.booting.delete(key));
    this.booting.set(key, booted);
  }

  /** Stops every spare. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.ready.keys()].map((key) => this.drop(key)));
    // One still booting stops itself once started (closed); wait for it, so that nothing is left behind.
    await Promise.all(this.booting.values());
  }

  private async drop(key: string): Promise<void> {
    const waiting = this.ready.get(key);
    if (!waiting) return;
    this.ready.delete(key);
    clearTimeout(waiting.idle);
    waiting.connection.destroy();
    await this.options.runtime.kill(waiting.spare.id);
  }

  private async boot(key: string, spec: SpareSpec): Promise<void> {
    const id = `sp-${randomUUID().slice(0, 13)}`;
    const home = join(this.options.dir, id);
    const sockDir = join(home, "sock");
    const bundleDir = join(home, "bundle");
    await mkdir(sockDir, { recursive: true });
    await mkdir(bundleDir, { recursive: true });
    let server: Server | undefined;
    const release = async () => {
      server?.close();
      await rm(home, { recursive: true, force: true });
    };
    try {
      // The spare's runner connects here once Node and the runner are loaded: then it is ready.
      let connected!: (socket: Socket) => void;
      const connection = new Promise<Socket>((resolve) => (connected = resolve));
      server = await listen(join(sockDir, SPARE_SOCKET), (socket) => connected(socket));
      const handle = await this.options.runtime.start(spec(id, { sockDir, bundleDir }));
      // One that ends while it waits (killed, crashed) is forgotten; one taken is its container's from then on.
      void handle.exited.then(async () => {
        if (this.ready.get(key)?.spare.id === id) this.ready.delete(key);
        if (!this.taken.delete(id)) await release();
      });
      const socket = await Promise.race([
        connection,
        handle.exited.then(() => {
          throw new Error(`spare runner ${id} exited before it was ready`);
        }),
        sleepReject(SPARE_BOOT_MS, `spare runner ${id} was not ready within ${SPARE_BOOT_MS} ms`),
      ]);
      server.close();
      socket.on("error", () => {});
      const spare: Spare = {
        id,
        handle,
        sockDir,
        bundleDir,
        assign: async (codeDir, env) => {
          await linkFiles(codeDir, bundleDir);
          await new Promise<void>((resolve) => {
            writeFrames(socket, [encodeMessage({ t: "assign", env } satisfies SpareAssignment)]);
            socket.end(resolve);
          });
        },
        release,
      };
      if (this.closed || !this.recent.includes(key)) {
        await this.options.runtime.kill(id);
        return;
      }
      const idle = setTimeout(() => void this.drop(key), SPARE_IDLE_MS);
      idle.unref();
      this.ready.set(key, { spare, connection: socket, idle });
    } catch (error) {
      await this.options.runtime.kill(id).catch(() => {});
      await release();
      throw error;
    }
  }
}

/** Hard-links (or copies, across file systems) the files of `from` into `to`. */
async function linkFiles(from: string, to: string): Promise<void> {
  for (const name of await readdir(from)) {
    await link(join(from, name), join(to, name)).catch(() => copyFile(join(from, name), join(to, name)));
  }
}

function sleepReject(ms: number, message: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms).unref());
}
