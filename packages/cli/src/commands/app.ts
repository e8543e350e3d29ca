import { Client } from "skiff";
import type { Config } from "../config.js";
import { ensureServer } from "../embedded.js";
import { say } from "../output.js";

interface AppSummary {
  id: string;
  name: string;
  env: string;
  mode: string;
  state: string;
  createdAt: string;
}

/** `skiff app list`: apps of an environment, newest first. */
export async function appListCommand(options: { env: string }, config: Config): Promise<void> {
  const client = new Client({ serverUrl: await ensureServer(config, say) });
  const { apps } = await client.request<{ apps: AppSummary[] }>(
    "GET",
    `/v1/apps?env=${encodeURIComponent(options.env)}`,
  );
  if (apps.length === 0) {
    say(`no apps in environment "${options.env}": start one with \`skiff run FILE --detach\``);
    return;
  }
  for (const app of apps) console.log([app.id, app.name, app.mode, app.state, app.createdAt].join("\t"));
}

/** `skiff app stop ID`: stops an app; its containers drain and unfinished inputs are cancelled. */
export async function appStopCommand(appId: string, config: Config): Promise<void> {
  const client = new Client({ serverUrl: await ensureServer(config, say) });
  await client.request("POST", `/v1/apps/${encodeURIComponent(appId)}/stop`);
  say(`stopped ${appId}`);
}
