import { connect, createServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { listenOnSocket, type WebServing } from "./web-serving.js";

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

/** How a server switching protocols (a WebSocket) starts its answer. */
const SWITCHING = Buffer.from("HTTP/1.1 101");

/**
 * Serves a Unix socket by piping each of its connections, raw, to 127.0.0.1:`port`: whatever the server
 * there speaks (HTTP/1.1, WebSocket upgrades, event streams) passes through unchanged, with TCP's
 * backpressure both ways. `close` lets requests in flight finish, but cuts connections the server switched
 * to another protocol (WebSockets): those would keep a stopping container up until it is killed, and
 * their clients from reconnecting to a new one.
 */
export async function servePort(options: { socketPath: string; port: number }): Promise<WebServing> {
  const upgraded = new Set<Socket>();
  let closing = false;
  const server = createServer((client) => {
    const upstream = connect(options.port, "127.0.0.1");
    // An upgrade comes on a connection of its own, so a 101 is the first thing its server answers.
    upstream.once("data", (chunk: Buffer) => {
      if (!chunk.subarray(0, SWITCHING.length).equals(SWITCHING)) return;
      if (closing) client.destroy();
      else upgraded.add(client);
    });
    client.once("close", () => upgraded.delete(client));
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.once("error", end).once("close", end);
    upstream.once("error", end).once("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await listenOnSocket(server, options.socketPath);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        server.close(() => resolve());
        for (const client of upgraded) client.destroy();
      }),
  };
}
