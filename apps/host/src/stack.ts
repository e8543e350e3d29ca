import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { type BlobStore, FsBlobStore } from "@skiff/blob";
import { type Config, runnerDir } from "@skiff/cli";
import { type RunningServer, startServer } from "@skiff/server";
import { openPglite, openPostgres, SecretBox, Store } from "@skiff/store";
import { createRuntime, detectRuntime, WorkerAgent } from "@skiff/worker";
import type { Logger } from "pino";
import { ensureLocalCredentials, workerToken } from "./local-credentials.js";

/**
 * Starts the control plane on the configured stores: PGlite under SKIFF_HOME, or SKIFF_DATABASE_URL; blobs
 * under SKIFF_HOME, or where SKIFF_BLOB_URL says.
 */
export async function startControlPlane(
  config: Config,
  log: Logger,
  port: number,
): Promise<RunningServer & { store: Store }> {
  await mkdir(config.SKIFF_HOME, { recursive: true });
  const blobs = await openBlobStore(config);
  const db = config.SKIFF_DATABASE_URL
    ? await openPostgres(config.SKIFF_DATABASE_URL)
    : await openPglite(join(config.SKIFF_HOME, "data"));
  // The master key: SKIFF_MASTER_KEY, or a key file made on first start (mode 0600).
  const keyFile = join(config.SKIFF_HOME, "master.key");
  const store = new Store(db, {
    box: await SecretBox.load({ env: config.SKIFF_MASTER_KEY, keyFile }),
    volumeQuotaBytes: config.SKIFF_VOLUME_QUOTA,
  });
  const secrets = { store: store.secrets, ...(config.SKIFF_MASTER_KEY ? {} : { keyFile }) };
  const server = await startServer({
    store,
    blobs,
    log,
    port,
    host: "127.0.0.1",
    secrets,
    ...(config.SKIFF_WEB_URL ? { webBaseUrl: config.SKIFF_WEB_URL } : {}),
  });
  await ensureLocalCredentials(config, server.tokens, log);
  return {
    ...server,
    store,
    close: async () => {
      await server.close();
      await store.close();
      blobs.close?.();
    },
  };
}

/**
 * The blob store SKIFF_BLOB_URL names, else a directory under SKIFF_HOME. A bucket is checked before the
 * server starts: one missing, or credentials it refuses, fail the start and say so, not the first upload.
 */
async function openBlobStore(config: Config): Promise<BlobStore & { close?: () => void }> {
  const location = config.SKIFF_BLOB_URL ?? { kind: "fs", root: join(config.SKIFF_HOME, "blobs") };
  if (location.kind === "fs") return new FsBlobStore(location.root);
  // Loaded only here: the AWS SDK takes a quarter of a second to load, which a server on disk need not pay.
  const { S3BlobStore } = await import("@skiff/blob/s3");
  const blobs = new S3BlobStore(location);
  await blobs.check();
  return blobs;
}

/**
 * Starts a worker agent on this host with the configured runtime. Given `server` (one in this process),
 * it talks to it directly instead of over a WebSocket.
 */
export async function startWorker(
  config: Config,
  log: Logger,
  serverUrl: string,
  server?: RunningServer,
): Promise<WorkerAgent> {
  const stateDir = join(config.SKIFF_HOME, "worker");
  // Short (socket paths are limited) and unique per SKIFF_HOME, so workers on one host keep apart.
  const stateRoot = `/run/skiff/w-${createHash("sha256").update(stateDir).digest("hex").slice(0, 12)}`;
  const choice = { stateRoot, allowHostPorts: config.SKIFF_ALLOW_HOST_PORTS };
  const runtime =
    config.SKIFF_RUNTIME === "auto" ? await detectRuntime(choice) : createRuntime(config.SKIFF_RUNTIME, choice);
  const available = await runtime.available();
  if (!available.ok) throw new Error(`the ${runtime.name} runtime cannot run here: ${available.reason}`);
  if (runtime.name === "process") {
    log.warn(
      "containers run as plain processes: NO isolation (install runsc or runc and run `make setup` for real containers)",
    );
  }
  // Image steps run on runc where it exists: the gVisor release Debian ships breaks coreutils' statx.
  const runc = runtime.name === "gvisor" ? createRuntime("runc", choice) : undefined;
  const buildRuntime = runc && (await runc.available()).ok ? runc : runtime;
  const agent = new WorkerAgent({
    buildRuntime,
    imageCacheMiB: config.SKIFF_IMAGE_CACHE_MIB,
    spareRunners: config.SKIFF_SPARE_RUNNERS,
    serverUrl,
    runtime,
    log,
    stateDir,
    cacheDir: config.cacheDir,
    runnerDir: runnerDir(),
    token: server ? server.workerCredential : await workerToken(config),
    ...(server ? { connect: () => server.connectWorker() } : {}),
    webRelay: webRelayOptions(),
  });
  await agent.start();
  // Server and worker in one process: the gateway reaches this worker's containers without its relay's hop.
  if (server && agent.localWebRelay) server.attachLocalWebRelay(agent.localWebRelay);
  return agent;
}

/**
 * Where a worker's web relay listens: SKIFF_WORKER_WEB_HOST and SKIFF_WORKER_WEB_PORT, for a worker on
 * another host than its server (default: 127.0.0.1, an ephemeral port, enough for `skiff up`).
 */
function webRelayOptions(env: NodeJS.ProcessEnv = process.env): { host?: string; port?: number } {
  const host = env.SKIFF_WORKER_WEB_HOST || undefined;
  const portText = env.SKIFF_WORKER_WEB_PORT || undefined;
  const port = portText === undefined ? undefined : Number(portText);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65_536))
    throw new Error("environment variable SKIFF_WORKER_WEB_PORT is invalid: use a TCP port (0 for any free one)");
  return { ...(host ? { host } : {}), ...(port !== undefined ? { port } : {}) };
}
