import { Client } from "skiff/plumbing";
import { credentialOf, type ResolvedProfile, readProfiles, resolveProfile } from "skiff/profiles";
import type { Config } from "./config.js";
import { ensureServer } from "./embedded.js";
import { say, yellow } from "./output.js";

/** Where commands go: the server, the token they carry, and the environment they act in. */
export interface Connection {
  client: Client;
  serverUrl: string;
  /** `ID:SECRET`, if there is one. */
  token: string | undefined;
  env: string;
}

/** The profile in effect (SKIFF_PROFILE, `active`, or the only one), with the environment's overrides. */
export async function currentProfile(config: Config): Promise<ResolvedProfile> {
  const file = await readProfiles(config.SKIFF_HOME);
  if (file.warning) say(yellow(file.warning));
  return resolveProfile(file, process.env);
}

/**
 * A client of the configured server: the profile's (or SKIFF_SERVER_URL), else the embedded default,
 * started if needed. `envFlag` (--env) wins over SKIFF_ENV and the profile's environment.
 */
export async function connectServer(config: Config, envFlag?: string): Promise<Connection> {
  let profile = await currentProfile(config);
  const serverUrl = profile.serverUrl ?? (await ensureServer(config, say));
  // The embedded server writes its token into the profiles on first start: read them again.
  if (!profile.tokenId && !profile.serverUrl) profile = await currentProfile(config);
  const token = credentialOf(profile);
  return {
    client: new Client({ serverUrl, agent: "cli", ...(token ? { token } : {}) }),
    serverUrl,
    token,
    env: envFlag ?? profile.env ?? "main",
  };
}

/** A client of the configured server (the embedded default, started if needed). */
export async function serverClient(config: Config): Promise<Client> {
  return (await connectServer(config)).client;
}
