import { rm } from "node:fs/promises";
import { connect, createServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { WebServing } from "./web-serving.js";

/** Resolves once something accepts TCP connections on 127.0.0.1:`port` (polled every 100 ms). */
export async function waitForPort(port: number, stopped: () => boolean = () => false): Promise<void> {
  while (!stopped()) {
    const open = await new Promise<boolean>((resolve) => {
      const probe = connect(port, "127.0.0.1");
      probe.once("connect", () => {
        probe.destroy();
        resolve(true);
      });
      probe.once("error", () => resolve(false));
    });
    if (open) return;
    await sleep(100);
  }
}

/**
 * Serves a Unix socket by piping each of its connections, raw, to 127.0.0.1:`port`: whatever the server
 * there speaks (HTTP/1.1, WebSocket upgrades, event streams) passes through unchanged, with TCP's
 * backpressure both ways.
 */
export async function servePort(options: { socketPath: string; port: number }): Promise<WebServing> {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(options.port, "127.0.0.1");
    open.add(client);
    client.once("close", () => open.delete(client));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once("error", end).once("close", end);
    upstream.once("error", end).once("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await rm(options.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
