import { buildId, type Config, clearEmbeddedState, say, writeEmbeddedState } from "@skiff/cli";
import { makeLogger } from "../logger.js";
import { startControlPlane, startWorker } from "../stack.js";

/**
 * `skiff up`: server and worker on this machine, in the foreground (or as the embedded default). Either way
 * it records its URL in SKIFF_HOME/embedded.json while it runs, so commands and programs with the same
 * SKIFF_HOME find it without SKIFF_SERVER_URL.
 */
export async function upCommand(options: { port?: number; embedded: boolean }, config: Config): Promise<void> {
  const log = makeLogger(config, "skiff");
  const port = options.port ?? config.SKIFF_PORT ?? (options.embedded ? 0 : 7420);
  const server = await startControlPlane(config, log, port);
  const worker = await startWorker(config, log, server.url, server);
  // A `skiff up` in a terminal is recorded too: commands and programs with this SKIFF_HOME then use it.
  await writeEmbeddedState(config, {
    url: server.url,
    pid: process.pid,
    build: buildId(),
    ...(options.embedded ? {} : { foreground: true }),
  });
  say(`server on ${server.url} with a worker; data in ${config.SKIFF_DATABASE_URL ? "PostgreSQL" : config.SKIFF_HOME}`);
  await waitForSignal();
  say("shutting down");
  await worker.stop();
  await server.close();
  await clearEmbeddedState(config, process.pid);
}

/** `skiff server`: the control plane alone; workers connect to it. */
export async function serverCommand(options: { port?: number }, config: Config): Promise<void> {
  const log = makeLogger(config, "skiff-server");
  const server = await startControlPlane(config, log, options.port ?? config.SKIFF_PORT ?? 7420);
  say(`server on ${server.url}; start workers with \`SKIFF_SERVER_URL=${server.url} skiff worker\``);
  await waitForSignal();
  await server.close();
}

/** `skiff worker`: a worker agent on this host, connecting out to SKIFF_SERVER_URL. */
export async function workerCommand(config: Config): Promise<void> {
  if (!config.SKIFF_SERVER_URL) throw new Error("set SKIFF_SERVER_URL to the server the worker should join");
  const log = makeLogger(config, "skiff-worker");
  const worker = await startWorker(config, log, config.SKIFF_SERVER_URL);
  await waitForSignal();
  await worker.stop();
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once("SIGINT", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
}
