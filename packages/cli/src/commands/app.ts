import { appRoutes, containerRoutes } from "@skiff/protocol/http";
import type { Client } from "skiff/plumbing";
import type { Config } from "../config.js";
import { dim, green, printLogs, say } from "../output.js";
import { formatPeriod } from "../period-format.js";
import { connectServer, serverClient } from "../server-client.js";
import { formatPhases, formatStart } from "../start-format.js";
import { formatWebUrls, labeledUrls, webUrlContext } from "../web-urls.js";

/** One line per schedule of an app: what, when next, what happened last. */
export async function printSchedules(client: Client, app: string, env: string): Promise<void> {
  const { schedules } = await client.call(appRoutes.schedules, { params: { app }, query: { env } });
  const when = (ms: number | undefined) => (ms === undefined ? "never" : new Date(ms).toISOString());
  for (const s of schedules) {
    const what =
      "cron" in s.schedule
        ? `cron "${s.schedule.cron}" (${s.schedule.timezone})`
        : `every ${formatPeriod(s.schedule.periodMs)}`;
    const last = s.lastOutcome === "failed" ? `failed: ${s.lastError}` : when(s.lastRunMs);
    const skipped = s.skippedTicks > 0 ? dim(` (${s.skippedTicks} skipped: the previous run was still going)`) : "";
    say(`  ${s.functionName ?? "?"}: ${what}, next ${when(s.nextRunMs)}, last ${last}${skipped}`);
  }
}

/** `skiff app list`: apps of an environment, newest first. */
export async function appListCommand(options: { env?: string }, config: Config): Promise<void> {
  const { client, env, serverUrl } = await connectServer(config, options.env);
  const { apps } = await client.call(appRoutes.list, { query: { env } });
  if (apps.length === 0) {
    say(`no apps in environment "${env}": deploy one with \`skiff deploy FILE\``);
    return;
  }
  // A deployed app's URLs, under its line: the same for every version.
  const web = apps.filter((app) => app.mode === "deployed" && app.state === "running" && app.webLabels?.length);
  const context = web.length > 0 ? await webUrlContext(client) : { workspaceName: "" };
  const urls = labeledUrls(
    context,
    web.map((app) => ({ app: app.name, labels: app.webLabels ?? [] })),
    { serverUrl, env },
  );
  for (const app of apps) {
    console.log([app.id, app.name, app.mode, app.state, `v${app.version}`, app.createdAt].join("\t"));
    const at = web.indexOf(app);
    if (at >= 0) for (const line of formatWebUrls(urls[at]!)) console.log(line);
  }
}

/** `skiff app history NAME`: the versions of a deployed app, newest first. */
export async function appHistoryCommand(name: string, options: { env?: string }, config: Config): Promise<void> {
  const { client, env, serverUrl } = await connectServer(config, options.env);
  const { app, versions } = await client.call(appRoutes.history, { params: { app: name }, query: { env } });
  for (const v of versions) {
    const mark = v.current ? green("running") : "";
    console.log([`v${v.version}`, v.createdAt, v.functions.join(","), v.note, mark].join("\t"));
  }
  // The URLs of the running version's web functions: the same for every version.
  if (app.state === "running" && app.webLabels?.length) {
    const [urls] = labeledUrls(await webUrlContext(client), [{ app: app.name, labels: app.webLabels }], {
      serverUrl,
      env,
    });
    for (const line of formatWebUrls(urls ?? [])) console.log(line);
  }
  await printSchedules(client, name, env);
}

/** `skiff app rollback NAME [VERSION]`: deploys an earlier version again (the one before by default). */
export async function appRollbackCommand(
  name: string,
  version: string | undefined,
  options: { env?: string },
  config: Config,
): Promise<void> {
  const target = version === undefined ? undefined : Number(version.replace(/^v/, ""));
  if (target !== undefined && (!Number.isInteger(target) || target < 1)) {
    throw new Error(`"${version}" is not a version: pass a number from \`skiff app history ${name}\``);
  }
  const { client, env } = await connectServer(config, options.env);
  const deployed = await client.call(appRoutes.rollback, {
    params: { app: name },
    body: { env, ...(target === undefined ? {} : { version: target }) },
  });
  say(green(`rolled ${name} back: version ${deployed.version} runs the code of version ${target ?? "before"}`));
}

/** `skiff app stop NAME|ID`: stops an app; its containers drain and unfinished inputs are cancelled. */
export async function appStopCommand(app: string, options: { env?: string }, config: Config): Promise<void> {
  const { client, env } = await connectServer(config, options.env);
  const { appId } = await client.call(appRoutes.stop, { params: { app }, query: { env } });
  say(`stopped ${app} ${dim(`(${appId})`)}`);
}

/** `skiff app logs NAME|ID`: follows the logs of an app's containers until interrupted. */
export async function appLogsCommand(app: string, options: { env?: string }, config: Config): Promise<void> {
  const { client, env } = await connectServer(config, options.env);
  const found = await client.call(appRoutes.get, { params: { app }, query: { env } });
  say(dim(`following the logs of ${found.app.name} (${found.app.id}); Ctrl-C to stop`));
  await client.streamLogs(found.app.id, printLogs);
  await new Promise(() => {});
}

/**
 * `skiff container list [--phases]`: the containers workers run now, with how each started (`booted 912 ms`);
 * `--phases` adds a line under each with the time of every phase of its start and of its first input.
 */
export async function containerListCommand(options: { phases?: boolean }, config: Config): Promise<void> {
  const client = await serverClient(config);
  const { containers } = await client.call(containerRoutes.list);
  if (containers.length === 0) say("no containers are running");
  for (const c of containers) {
    // A class's pool shows its parameter values.
    const what = c.pool ? `${c.function} ${c.pool}` : c.function;
    console.log([c.id, c.appId, what, `v${c.version}`, c.state, c.worker, formatStart(c.start)].join("\t"));
    if (options.phases) console.log(`  ${formatPhases(c.start, c.firstInputMs)}`);
  }
}
