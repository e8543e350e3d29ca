import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { BlobStore } from "@skiff/blob";
import {
  HTTP_STATUS,
  type Link,
  type LocalWebRelay,
  linkPair,
  MAX_FRAME_BYTES,
  type ServerToWorker,
  type WorkerMessage,
} from "@skiff/protocol";
import type { Store, TokenStore } from "@skiff/store";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { Authenticator, SocketsByToken } from "./auth.js";
import { ControlPlane } from "./engine/control-plane.js";
import { ApiError } from "./errors.js";
import { apiRoutes } from "./routes/api.js";
import { WebGateway } from "./routes/gateway.js";
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
  /**
   * Where web functions are reached by host name (`LABEL-APP.ENV.DOMAIN`): a base URL such as
   * `https://apps.example.com` whose host name is the domain (SKIFF_WEB_URL). Without it, paths only.
   */
  webBaseUrl?: string;
}

export interface RunningServer {
  url: string;
  control: ControlPlane;
  tokens: TokenStore;
  /** Connects a worker running in this process, without a socket (`skiff up`). */
  connectWorker(): Link<WorkerMessage, ServerToWorker>;
  /** Lets the gateway reach the containers of that worker's web relay directly, skipping its HTTP hop. */
  attachLocalWebRelay(relay: LocalWebRelay): void;
  /** What a worker in this process authenticates its HTTP calls (blobs, layers) with; never stored. */
  workerCredential: string;
  /** Every HTTP route, as `METHOD /path` (the authorization tests walk them all). */
  routes: string[];
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
  const tokens = store.tokens;
  const workerCredential = `in-process:${randomBytes(32).toString("base64url")}`;
  const auth = new Authenticator(tokens, workerCredential);
  const sockets = new SocketsByToken();
  const api = apiRoutes({
    store,
    blobs,
    control,
    auth,
    tokens,
    sockets,
    ...(options.secrets ? { secrets: options.secrets } : {}),
    ...(options.webBaseUrl ? { webBaseUrl: options.webBaseUrl } : {}),
  });

  // Web requests (`/w/...`) skip the API's router, tokens and body limits: the gateway streams them itself.
  const gateway = new WebGateway({
    store,
    control,
    log,
    ...(options.webBaseUrl ? { webDomain: new URL(options.webBaseUrl).hostname } : {}),
  });
  const apiListener = getRequestListener(api.fetch, { hostname: options.host ?? "127.0.0.1" });
  const server = createServer((req, res) => (gateway.owns(req) ? gateway.handle(req, res) : apiListener(req, res)));
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve));
  const address = server.address() as AddressInfo;
  const url = `http://${options.host ?? "127.0.0.1"}:${address.port}`;

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
  server.on("upgrade", async (request, socket, head) => {
    // A WebSocket to a web function (by its path or its host name): the gateway takes it to a container.
    if (gateway.owns(request)) {
      gateway.upgrade(request, socket, head);
      return;
    }
    const path = new URL(request.url ?? "/", url).pathname;
    if (path !== "/v1/client" && path !== "/v1/worker") {
      refuseUpgrade(
        socket,
        new ApiError("NOT_FOUND", `there is no WebSocket at ${path}: use /v1/client or /v1/worker`),
      );
      return;
    }
    const caller = await auth.upgrade(request, path === "/v1/client" ? ["user", "container"] : ["worker"]);
    if (caller instanceof ApiError) {
      refuseUpgrade(socket, caller);
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      sockets.add(caller.tokenId, ws);
      if (path === "/v1/client") serveClient(ws, control, log, caller);
      else serveWorker(workerSocketLink(ws, log), control, log, url);
    });
  });

  const inProcess = new Set<Link<ServerToWorker, WorkerMessage>>();
  log.info({ url }, "server listening");
  return {
    url,
    control,
    tokens,
    workerCredential,
    routes: [...new Set(api.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`))],
    attachLocalWebRelay: (relay) => gateway.attachLocal(relay),
    connectWorker: () => {
      const [serverEnd, workerEnd] = linkPair<ServerToWorker, WorkerMessage>();
      serveWorker(serverEnd, control, log, url);
      inProcess.add(serverEnd);
      return workerEnd;
    },
    close: async () => {
      for (const link of inProcess) link.close(1001, "the server is shutting down");
      for (const client of wss.clients) client.terminate();
      wss.close();
      gateway.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await control.stop();
    },
  };
}

/** Answers a WebSocket upgrade with the API's error, as JSON, and closes the connection. */
function refuseUpgrade(socket: { end(data: string): void }, error: ApiError): void {
  const body = JSON.stringify(error.body());
  socket.end(
    `HTTP/1.1 ${HTTP_STATUS[error.code]} ${error.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
