import { type CreatedToken, secretRoutes, tokenRoutes, workspaceRoutes } from "@skiff/protocol/http";
import { writeProfile } from "skiff/profiles";
import { UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { bold, dim, green, say } from "../output.js";
import { connectServer, currentProfile } from "../server-client.js";

/** Prints a new token's secret, the one time it is shown, and how to use it. */
function showCreated(created: CreatedToken, profile: string | undefined): void {
  say(green(`created ${created.token.kind} token ${created.token.id} (${created.token.name})`));
  if (created.token.kind === "worker") {
    console.log(`SKIFF_WORKER_TOKEN=${created.credential}`);
    say(dim("the secret is shown once: give it to `skiff worker` as SKIFF_WORKER_TOKEN"));
    return;
  }
  if (created.token.kind === "proxy") {
    console.log(`Skiff-Key: ${created.token.id}`);
    console.log(`Skiff-Secret: ${created.secret}`);
    say(dim("the secret is shown once: send both headers with requests to endpoints that require proxy auth"));
    return;
  }
  console.log(`SKIFF_TOKEN_ID=${created.token.id}`);
  console.log(`SKIFF_TOKEN_SECRET=${created.secret}`);
  say(
    dim(
      profile
        ? `the secret is shown once; it is also saved as profile "${profile}" (use it with SKIFF_PROFILE=${profile})`
        : "the secret is shown once: set both variables where it is used, or save it with --save-as PROFILE",
    ),
  );
}

/** Saves a user token as a profile that reaches the same server as this command did. */
async function saveAs(config: Config, name: string, created: CreatedToken): Promise<void> {
  const current = await currentProfile(config);
  await writeProfile(config.SKIFF_HOME, name, {
    tokenId: created.token.id,
    tokenSecret: created.secret,
    ...(current.serverUrl ? { serverUrl: current.serverUrl } : {}),
  });
}

/** `skiff token create --name NAME [--worker] [--admin] [--proxy] [--save-as PROFILE]` */
export async function tokenCreateCommand(
  options: { name: string; worker?: boolean; admin?: boolean; proxy?: boolean; saveAs?: string },
  config: Config,
): Promise<void> {
  if ((options.worker || options.proxy) && options.saveAs)
    throw new UserCodeError("--save-as is for user tokens, not worker or proxy tokens");
  const { client } = await connectServer(config);
  const created = await client.call(tokenRoutes.create, {
    body: {
      name: options.name,
      kind: options.worker ? "worker" : "user",
      admin: Boolean(options.admin),
      proxy: Boolean(options.proxy),
    },
  });
  if (options.saveAs) await saveAs(config, options.saveAs, created);
  showCreated(created, options.saveAs);
}

/** `skiff token list [--worker]`: this workspace's tokens (or the worker tokens); never secrets. */
export async function tokenListCommand(options: { worker?: boolean }, config: Config): Promise<void> {
  const { client } = await connectServer(config);
  const { tokens } = await client.call(tokenRoutes.list, { query: options.worker ? { kind: "worker" } : {} });
  for (const t of tokens) {
    const state = t.revokedAt ? `revoked ${t.revokedAt}` : t.lastUsedAt ? `used ${t.lastUsedAt}` : "never used";
    console.log([t.id, t.name, t.admin ? "admin" : t.kind, t.createdAt, state].join("\t"));
  }
}

/** `skiff token revoke ID`: the token stops working at once, open connections included. */
export async function tokenRevokeCommand(id: string, config: Config): Promise<void> {
  const { client } = await connectServer(config);
  await client.call(tokenRoutes.revoke, { params: { id } });
  say(`revoked ${id}`);
}

/** `skiff whoami`: the token and workspace this CLI acts as. */
export async function whoamiCommand(config: Config): Promise<void> {
  const { client, serverUrl, env } = await connectServer(config);
  const me = await client.call(tokenRoutes.whoami);
  const profile = await currentProfile(config);
  say(
    `${bold(me.workspace?.name ?? "?")} ${dim(`(${me.workspace?.id})`)} as ${me.tokenId}${me.admin ? " (admin)" : ""} on ${serverUrl}, environment ${env}${profile.name ? dim(`, profile ${profile.name}`) : ""}`,
  );
}

/** `skiff workspace create NAME [--save-as PROFILE]`: a new workspace and its first token (admin only). */
export async function workspaceCreateCommand(name: string, options: { saveAs?: string }, config: Config) {
  const { client } = await connectServer(config);
  const created = await client.call(workspaceRoutes.create, { body: { name } });
  say(green(`created workspace ${created.workspace.name} (${created.workspace.id})`));
  const profile = options.saveAs ?? name;
  await saveAs(config, profile, created);
  showCreated(created, profile);
}

/** `skiff workspace list` (admin only) */
export async function workspaceListCommand(config: Config): Promise<void> {
  const { client } = await connectServer(config);
  const { workspaces } = await client.call(workspaceRoutes.list);
  for (const w of workspaces) console.log([w.id, w.name, w.createdAt].join("\t"));
}

/** `skiff rotate-key`: a new master key for the server's secrets (admin). */
export async function rotateKeyCommand(config: Config): Promise<void> {
  const { client } = await connectServer(config);
  const done = await client.call(secretRoutes.rotateKey);
  say(
    green(
      `master key is now ${done.keyId}: re-sealed ${done.secrets} secret(s) and the local secrets of ${done.localSecrets} app version(s)`,
    ),
  );
  if (done.skipped > 0) say(`${done.skipped} app version(s) sealed with an unknown key were left as they were`);
}
