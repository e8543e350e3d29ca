import { readFile, rename, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Config } from "@skiff/cli";
import { LOCAL_WORKSPACE, type TokenStore } from "@skiff/store";
import type { Logger } from "pino";
import { credentialOf, readProfiles, writeProfile } from "skiff/profiles";

/** Where a server keeps the worker token it made, for workers started with the same SKIFF_HOME. */
function workerTokenPath(config: Config): string {
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
export async function ensureLocalCredentials(config: Config, tokens: TokenStore, log: Logger): Promise<void> {
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
