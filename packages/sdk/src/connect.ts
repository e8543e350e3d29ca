import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import type { Client } from "./client.js";
import { getContext } from "./context.js";
import { SkiffError } from "./errors.js";

let shared: Client | undefined;

/**
 * The client for this process: the one `skiff run` (or the container) set up, else the profile in
 * SKIFF_HOME/config.toml with SKIFF_SERVER_URL, SKIFF_TOKEN_ID and SKIFF_TOKEN_SECRET over it, else the
 * embedded server.
 */
export async function clientFromEnvironment(): Promise<Client> {
  const context = getContext();
  // In a container the client lives on the context: the runner closes it before a memory snapshot (its
  // connection could not be saved, and a restored container has another token), and the next call opens one.
  if (context?.where === "container" && context.client) return context.client as Client;
  if (shared && context?.where !== "container") return shared;
  await context?.tokenReady;
  const home = process.env.SKIFF_HOME ?? join(homedir(), ".skiff");
  const profiles = context?.serverUrl ? undefined : await import("./profiles.js");
  const profile = profiles?.resolveProfile(await profiles.readProfiles(home), process.env);
  const serverUrl = context?.serverUrl ?? profile?.serverUrl ?? (await embeddedUrl(home));
  const token = context?.token ?? (profile && profiles?.credentialOf(profile));
  // Loaded on first use: code inside containers that never calls out does not pay for ws.
  const { Client } = await import("./client.js");
  const client = new Client({ serverUrl, agent: "sdk", ...(token ? { token } : {}) });
  if (context?.where === "container") context.client = client;
  else shared = client;
  return client;
}

/** Closes the shared client so the process can exit. */
export function closeSharedClient(): void {
  shared?.close();
  shared = undefined;
  const context = getContext();
  context?.client?.close();
  if (context) context.client = undefined;
}

async function embeddedUrl(home: string): Promise<string> {
  try {
    const state = JSON.parse(await readFile(join(home, "embedded.json"), "utf8")) as { url: string };
    return state.url;
  } catch {
    throw new SkiffError(
      "UNAVAILABLE",
      "no Skiff server is configured: run your program with `skiff run FILE`, start one with `skiff up`, or set SKIFF_SERVER_URL",
    );
  }
}
