import { Client } from "skiff";
import type { Config } from "./config.js";
import { ensureServer } from "./embedded.js";
import { say } from "./output.js";

/** A client of the configured server (the embedded default, started if needed). */
export async function serverClient(config: Config): Promise<Client> {
  return new Client({ serverUrl: await ensureServer(config, say) });
}
