import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureOnBothRuntimes, runtimeArgs, withBundle } from "./raw-container.js";
import { isMain, summarize } from "./stats.js";

/** Options for {@link containerEchoLatency}. */
export interface ContainerEchoOptions {
  runtime: "runc" | "runsc";
  /** Root filesystem directory, the overlay's lower layer. */
  rootfs: string;
  /** Directory holding bin/node. */
  nodeDir: string;
  requests?: number;
  warmup?: number;
}

const SOCKET_DIR = "/.skiff/sock";
const FRAME = Buffer.alloc(64, 7);
// Inside the container: connect to the host's socket and send back every byte as it comes.
const ECHO = `const s = require("node:net").connect("${SOCKET_DIR}/echo.sock"); s.on("data", (d) => s.write(d)); s.on("end", () => process.exit(0));`;

/**
 * The floor under the container hop of a warm call: sequential round trips of a 64-byte frame between this process
 * and node inside a raw `runc|runsc run` container, over a Unix socket in a bind-mounted directory (as Skiff's
 * runner socket is; runsc with `--host-uds=all` on the ptrace platform). Figures are milliseconds per round trip.
 */
export async function containerEchoLatency(opts: ContainerEchoOptions): Promise<{ p50Ms: number; p99Ms: number }> {
  const { requests = 2000, warmup = 2000 } = opts;
  const dir = await mkdtemp(join(tmpdir(), "skiff-bench-echo-"));
  const server = createServer();
  const connected = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(join(dir, "echo.sock"), resolve));
  const binds = [{ source: dir, destination: SOCKET_DIR, readonly: false }];
  try {
    return await withBundle(opts, { nodeArgs: ["-e", ECHO], binds }, async (id, bundle) => {
      const child = spawn(opts.runtime, [...runtimeArgs(opts.runtime), "run", "--bundle", bundle, id], {
        cwd: bundle,
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      const socket = await Promise.race([
        connected,
        exited.then((code) => Promise.reject(new Error(`${opts.runtime} exited ${code}: ${stderr.trim()}`))),
      ]);
      socket.setNoDelay(true);
      let waiting: (() => void) | undefined;
      let received = 0;
      socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= FRAME.length) {
          received -= FRAME.length;
          waiting?.();
        }
      });
      const samples: number[] = [];
      for (let i = 0; i < warmup + requests; i++) {
        const start = process.hrtime.bigint();
        await new Promise<void>((resolve) => {
          waiting = resolve;
          socket.write(FRAME);
        });
        if (i >= warmup) samples.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
      socket.end();
      await exited;
      const s = summarize(samples);
      return { p50Ms: s.p50, p99Ms: s.p99 };
    });
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await measureOnBothRuntimes("container-echo", containerEchoLatency);
