import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import { type RunningServer, startServer } from "@skiff/server";
import { LOCAL_WORKSPACE, openPglite, openPostgres, SecretBox, Store, type TokenStore } from "@skiff/store";
import { createRuntime, detectRuntime, WorkerAgent } from "@skiff/worker";
import pino, { type Logger } from "pino";
import { credentialOf, readProfiles, writeProfile } from "skiff/profiles";
import type { Config } from "./config.js";
import { formatLogLine } from "./log-format.js";
import { runnerDir } from "./paths.js";

/** pino to stderr: JSON for files and pipes (the embedded log), readable lines on a terminal. */
export function makeLogger(config: Config, name: string): Logger {
  const options = { name, level: config.SKIFF_LOG_LEVEL };
  if (!process.stderr.isTTY) return pino(options, pino.destination(2));
  return pino(options, { write: (json: string) => process.stderr.write(`${formatLogLine(json.trimEnd())}\n`) });
}

/** Starts the control plane on the configured store: PGlite under SKIFF_HOME, or SKIFF_DATABASE_URL. */
export async function startControlPlane(
  config: Config,
  log: Logger,
  port: number,
): Promise<RunningServer & { store: Store }> {
  await mkdir(config.SKIFF_HOME, { recursive: true });
  const db = config.SKIFF_DATABASE_URL
    ? await openPostgres(config.SKIFF_DATABASE_URL)
    : await openPglite(join(config.SKIFF_HOME, "data"));
  // The master key: SKIFF_MASTER_KEY, or a key file made on first start (mode 0600).
  const keyFile = join(config.SKIFF_HOME, "master.key");
  const store = new Store(db, { box: await SecretBox.load({ env: config.SKIFF_MASTER_KEY, keyFile }) });
  const blobs = new FsBlobStore(join(config.SKIFF_HOME, "blobs"));
  const secrets = { store: store.secrets, ...(config.SKIFF_MASTER_KEY ? {} : { keyFile }) };
  const server = await startServer({ store, blobs, log, port, host: "127.0.0.1", secrets });
  await ensureLocalCredentials(config, server.tokens, log);
  return {
    ...server,
    store,
    close: async () => {
      await server.close();
      await store.close();
    },
  };
}

/** Where a server keeps the worker token it made, for workers started with the same SKIFF_HOME. */
export function workerTokenPath(config: Config): string {
  return join(config.SKIFF_HOME, "worker.token");
}

async function savedWorkerToken(config: Config): Promise<string | undefined> {
  return readFile(workerTokenPath(config), "utf8").then(
    (text) => text.trim() || undefined,
    () => undefined,
  );
}

/**
 * The credentials of this machine's own CLI and workers: the "local" profile (an admin token of the
 * local workspace) and the worker token file under SKIFF_HOME. Each is made when missing or no longer
 * accepted by this store (a new database, a revoked token); both files are mode 0600.
 */
async function ensureLocalCredentials(config: Config, tokens: TokenStore, log: Logger): Promise<void> {
  const file = await readProfiles(config.SKIFF_HOME);
  const local = file.profiles.local;
  const saved = credentialOf({ tokenId: local?.token_id, tokenSecret: local?.token_secret });
  if (!saved || !(await tokens.verify(saved))) {
    const { token, secret } = await tokens.create({
      kind: "user",
      workspace: LOCAL_WORKSPACE,
      admin: true,
      name: `local admin (made by the server on ${hostname()})`,
    });
    await writeProfile(
      config.SKIFF_HOME,
      "local",
      { tokenId: token.id, tokenSecret: secret },
      { activate: !file.active },
    );
    log.info({ tokenId: token.id, file: file.path }, 'made an admin token of the local workspace: profile "local"');
  }
  const path = workerTokenPath(config);
  const worker = await savedWorkerToken(config);
  if (!worker || !(await tokens.verify(worker))) {
    const { credential } = await tokens.create({ kind: "worker", name: `workers of ${hostname()}` });
    await writeFile(`${path}.tmp`, `${credential}\n`, { mode: 0o600 });
    await rename(`${path}.tmp`, path);
    log.info({ file: path }, "made a worker token for workers started with this SKIFF_HOME");
  }
}

/** A worker's token: SKIFF_WORKER_TOKEN, else the one a server on this SKIFF_HOME made. */
export async function workerToken(config: Config): Promise<string> {
  if (config.SKIFF_WORKER_TOKEN) return config.SKIFF_WORKER_TOKEN;
  const saved = await savedWorkerToken(config);
  if (saved) return saved;
  throw new Error(
    `set SKIFF_WORKER_TOKEN to a worker token (an admin makes one with \`skiff token create --worker --name ${hostname()}\`), or run the worker with the SKIFF_HOME of a server on this machine`,
  );
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
    serverUrl,
    runtime,
    log,
    stateDir,
    cacheDir: config.cacheDir,
    runnerDir: runnerDir(),
    token: server ? server.workerCredential : await workerToken(config),
    ...(server ? { connect: () => server.connectWorker() } : {}),
  });
  await agent.start();
  return agent;
}
