import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { appRoutes, healthRoute } from "@skiff/protocol/http";
import type { SkiffContext } from "skiff";
import {
  type CollectedApp,
  collectApp,
  localSecretsOf,
  manifestOf,
  setContext,
  uploadImageFiles,
} from "skiff/plumbing";
import { parseFlags } from "../args.js";
import { type Bundle, bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { entrypointFlags, flagName, unknownFlags } from "../entrypoint-flags.js";
import { COLLECTING, missingPackage } from "../image-only.js";
import { dim, formatError, green, printLogs, progress, say } from "../output.js";
import { connectServer } from "../server-client.js";

/** `skiff run FILE[::NAME] [--detach] [args]`: runs a local entrypoint (or one function) against an ephemeral app. */
export async function runCommand(
  target: string,
  argv: string[],
  options: { detach: boolean },
  config: Config,
): Promise<number> {
  const started = Date.now();
  const [file, name] = splitTarget(target);
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));

  const context: SkiffContext = {
    v: 1,
    where: "local",
    functionIds: {},
    onProgress: (p) => {
      if (p.finished) progress.done();
      else progress.update(`${p.label} ${p.done}/${p.total}${p.submittedAll ? "" : "+"}`);
    },
  };
  setContext(context);
  const collected = await load(bundle, shown);
  const manifest = describe(collected, shown, bundle);
  const chosen = choose(collected, name, shown);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usageOf(chosen, `${shown}::${chosen.name}`));
    return 0;
  }
  const { flags, positional } = parseFlags(argv);
  checkArguments(chosen, flags, positional, `${shown}::${chosen.name}`);

  const { client, serverUrl, token, env } = await connectServer(config);
  await client.putBlob(bundle.code);
  await uploadImageFiles(client, ...manifest.functions.map((fn) => fn.image));
  const created = await client.call(appRoutes.create, {
    body: {
      manifest,
      env,
      mode: options.detach ? "detached" : "ephemeral",
      bundleHash: bundle.hash,
      localSecrets: localSecretsOf(collected),
    },
  });
  Object.assign(context, { serverUrl, token, appId: created.appId, env, functionIds: created.functions });
  say(
    `${collected.app.name}: ${manifest.functions.length} function(s) on ${serverUrl} ${dim(`(app ${created.appId})`)}`,
  );

  let lastLogAt = 0;
  /** Arrival times and sizes of the last batches of log lines, to tell a chatty end from a quiet one. */
  const recentBatches: { at: number; lines: number }[] = [];
  let logsEnded = () => {};
  const allLogs = new Promise<void>((resolve) => (logsEnded = resolve));
  await client.streamLogs(
    created.appId,
    (lines) => {
      lastLogAt = Date.now();
      recentBatches.push({ at: lastLogAt, lines: lines.length });
      if (recentBatches.length > 64) recentBatches.shift();
      printLogs(lines);
    },
    logsEnded,
  );
  const health = await client.call(healthRoute);
  if (health.workers === 0) {
    say(
      `no worker is connected to ${serverUrl}: calls will wait until one joins (\`SKIFF_SERVER_URL=${serverUrl} skiff worker\`)`,
    );
  }
  const heartbeat = setInterval(
    () => client.call(appRoutes.heartbeat, { params: { id: created.appId } }).catch(() => {}),
    10_000,
  );
  heartbeat.unref();
  /** Stops the app unless it is detached; whether the server stopped it. */
  const stop = async () => {
    clearInterval(heartbeat);
    if (options.detach) return false;
    return client.call(appRoutes.stop, { params: { app: created.appId } }).then(
      () => true,
      () => false,
    );
  };
  const onSignal = () => void stop().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let code = 0;
  try {
    if (chosen.kind === "entrypoint") {
      await chosen.entrypoint.run(flags);
    } else {
      const result = await chosen.fn.remote(...(positional as never[]));
      console.log(typeof result === "string" ? result : JSON.stringify(result, jsonSafe, 2));
    }
    say(green(`done in ${((Date.now() - started) / 1000).toFixed(1)}s`));
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    code = 1;
  } finally {
    // Container logs travel apart from results, and a chatty container's last lines come after its result.
    // An ephemeral app is stopped, and the server says when its containers are gone and their lines all sent;
    // a detached app keeps running, so its watcher waits until lines stop coming for a while.
    if (options.detach) {
      await quiet(recentBatches, () => lastLogAt);
      await stop();
      say(`the app keeps running: stop it with \`skiff app stop ${created.appId}\``);
    } else {
      if (await stop()) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<boolean>(
          (resolve) => (timer = setTimeout(() => resolve(false), LOGS_DRAIN_MAX_MS)),
        );
        const drained = await Promise.race([allLogs.then(() => true), timedOut]);
        clearTimeout(timer);
        if (!drained) say(dim(`stopped waiting for the app's last log lines after ${LOGS_DRAIN_MAX_MS / 1000}s`));
      }
    }
  }
  return code;
}

/**
 * Waits until no log line has come for a while: longer after a chatty end (lines still in flight come in
 * bursts), and at most LOGS_DRAIN_MAX_MS in all.
 */
async function quiet(recentBatches: { at: number; lines: number }[], lastLogAt: () => number): Promise<void> {
  const now = Date.now();
  const lastSecond = recentBatches.filter((b) => b.at > now - 1000).reduce((sum, b) => sum + b.lines, 0);
  const quietMs = lastSecond >= CHATTY_LINES_PER_SECOND ? LOGS_QUIET_CHATTY_MS : LOGS_QUIET_MS;
  const drainUntil = now + LOGS_DRAIN_MAX_MS;
  await sleep(LOGS_QUIET_MS);
  while (Date.now() - lastLogAt() < quietMs && Date.now() < drainUntil) {
    await sleep(quietMs - (Date.now() - lastLogAt()));
  }
}

const LOGS_QUIET_MS = 250;
const LOGS_QUIET_CHATTY_MS = 5000;
const CHATTY_LINES_PER_SECOND = 1000;
/** The longest `skiff run` waits for its app's last log lines. */
const LOGS_DRAIN_MAX_MS = 60_000;

export function splitTarget(target: string): [string, string | undefined] {
  const at = target.lastIndexOf("::");
  return at < 0 ? [target, undefined] : [target.slice(0, at), target.slice(at + 2)];
}

/** Imports the bundle (its collection copy: see Bundle) and finds its app. */
export async function load(bundle: Bundle, shown: string): Promise<CollectedApp> {
  // Errors thrown by the user's code (its options, its imports) point at its .ts lines, not the bundle's.
  process.setSourceMapsEnabled(true);
  const global = globalThis as { [COLLECTING]?: boolean };
  global[COLLECTING] = true;
  try {
    let exports: Record<string, unknown>;
    try {
      exports = (await import(pathToFileURL(bundle.collectPath).href)) as Record<string, unknown>;
    } catch (error) {
      throw new UserCodeError(`${shown} threw while loading:\n${formatError(error)}\nfix the error and run again`, {
        cause: error,
      });
    }
    try {
      return collectApp(exports, shown);
    } catch (error) {
      throw new UserCodeError((error as Error).message);
    }
  } finally {
    global[COLLECTING] = false;
  }
}

/**
 * The app's manifest; a bad function option is the user's to fix, so it reads as such, as does a package
 * imported but installed neither here nor by an image.
 */
export function describe(collected: CollectedApp, shown: string, bundle: Bundle) {
  let manifest: ReturnType<typeof manifestOf>;
  try {
    manifest = manifestOf(collected, Number(process.versions.node.split(".")[0]));
  } catch (error) {
    throw new UserCodeError(`${shown}: ${(error as Error).message}`);
  }
  const missing = missingPackage(
    bundle.imageOnly,
    manifest.functions.map((fn) => fn.image),
    displayPath,
  );
  if (missing) throw new UserCodeError(missing);
  return manifest;
}

type Chosen = { name: string } & (
  | { kind: "entrypoint"; entrypoint: CollectedApp["entrypoints"] extends Map<string, infer E> ? E : never }
  | { kind: "function"; fn: CollectedApp["functions"] extends Map<string, infer F> ? F : never }
);

/** What `skiff run FILE::NAME --help` prints: how to call the chosen entrypoint or function. */
function usageOf(chosen: Chosen, where: string): string {
  if (chosen.kind === "function")
    return `usage: skiff run ${where} [--detach] [ARG ...]\nruns the function once in a container with ARG ... as its arguments`;
  const known = entrypointFlags(chosen.entrypoint.run);
  const flags =
    known === undefined
      ? " [--FLAG VALUE ...]"
      : known.length === 0
        ? ""
        : ` ${known.map((key) => `[${flagName(key)} VALUE]`).join(" ")}`;
  return `usage: skiff run ${where} [--detach]${flags}\nruns the local entrypoint here, its functions in containers; flags are the keys its parameter destructures`;
}

/** An entrypoint takes the flags its parameter destructures; a function, positional arguments. */
function checkArguments(chosen: Chosen, flags: Record<string, unknown>, positional: unknown[], where: string): void {
  if (chosen.kind === "function") {
    const names = Object.keys(flags).map(flagName);
    if (names.length > 0)
      throw new UserCodeError(`${where} is a function: it takes positional arguments, not ${names.join(", ")}`);
    return;
  }
  const known = entrypointFlags(chosen.entrypoint.run);
  const problem = unknownFlags(flags, known, where);
  if (problem) throw new UserCodeError(problem);
  if (positional.length > 0) {
    const takes = known?.length ? ` (${known.map(flagName).join(", ")})` : "";
    throw new UserCodeError(
      `${where} is an entrypoint: it takes flags${takes}, not positional arguments (${positional.join(" ")})`,
    );
  }
}

function choose(collected: CollectedApp, name: string | undefined, shown: string): Chosen {
  const names = [...collected.entrypoints.keys(), ...collected.functions.keys()];
  if (name) {
    const entrypoint = collected.entrypoints.get(name);
    if (entrypoint) return { name, kind: "entrypoint", entrypoint };
    const fn = collected.functions.get(name);
    if (fn) return { name, kind: "function", fn };
    throw new UserCodeError(
      `${shown} has no entrypoint or function "${name}"; it has: ${names.join(", ") || "nothing exported"}`,
    );
  }
  if (collected.entrypoints.size === 1) {
    const [only, entrypoint] = [...collected.entrypoints][0]!;
    return { name: only, kind: "entrypoint", entrypoint };
  }
  if (collected.entrypoints.size === 0 && collected.functions.size === 1) {
    const [only, fn] = [...collected.functions][0]!;
    return { name: only, kind: "function", fn };
  }
  throw new UserCodeError(
    `${shown} has ${collected.entrypoints.size} entrypoints and ${collected.functions.size} functions: pick one with ${shown}::NAME (${names.join(", ")})`,
  );
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
