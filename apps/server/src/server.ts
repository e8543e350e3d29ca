import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import type { BlobStore } from "@skiff/blob";
import { type Link, linkPair, type ServerToWorker, type WorkerMessage } from "@skiff/protocol";
import type { Store } from "@skiff/store";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { ControlPlane } from "./engine/control-plane.js";
import { apiRoutes } from "./routes/api.js";
import type { Secrets } from "./routes/secrets.js";
import { serveClient } from "./sockets/client-socket.js";
import { serveWorker, workerSocketLink } from "./sockets/worker-socket.js";

export interface ServerOptions {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  abandonAfterMs?: number;
  /** Named secrets and the master key; without them, functions with secrets cannot run. */
  secrets?: Secrets;
}

export interface RunningServer {
  url: string;
  control: ControlPlane;
  /** Connects a worker running in this process, without a socket (`skiff up`). */
  connectWorker(): Link<WorkerMessage, ServerToWorker>;
  close(): Promise<void>;
}

/** Starts the control plane: HTTP API, client and worker WebSockets, and the engine's periodic work. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { store, blobs, log } = options;
  await store.migrate();
  const control = new ControlPlane({
    store,
    log,
    ...(options.secrets ? { secrets: options.secrets } : {}),
    ...(options.abandonAfterMs ? { abandonAfterMs: options.abandonAfterMs } : {}),
  });
  // Unfinished inputs are back in memory before any worker can say what it still runs.
  await control.start();
  const api = apiRoutes({ store, blobs, control, ...(options.secrets ? { secrets: options.secrets } : {}) });

  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: api.fetch, hostname: options.host ?? "127.0.0.1", port: options.port ?? 0 }, () =>
      resolve(s),
    );
  });
  const address = server.address() as AddressInfo;
  const url = `http://${options.host ?? "127.0.0.1"}:${address.port}`;

  const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
  server.on("upgrade", (request, socket, head) => {
    const path = new URL(request.url ?? "/", url).pathname;
    if (path !== "/v1/client" && path !== "/v1/worker") {
      socket.destroy();
      return;
    }
    sockets.handleUpgrade(request, socket, head, (ws) => {
      if (path === "/v1/client") serveClient(ws, control, log);
      else serveWorker(workerSocketLink(ws, log), control, log, url);
    });
  });

  const inProcess = new Set<Link<ServerToWorker, WorkerMessage>>();
  log.info({ url }, "server listening");
  return {
    url,
    control,
    connectWorker: () => {
      const [serverEnd, workerEnd] = linkPair<ServerToWorker, WorkerMessage>();
      serveWorker(serverEnd, control, log, url);
      inProcess.add(serverEnd);
      return workerEnd;
    },
    close: async () => {
      for (const link of inProcess) link.close(1001, "the server is shutting down");
      for (const client of sockets.clients) client.terminate();
      sockets.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await control.stop();
    },
  };
}
