import type { Db } from "./db.js";
import { type SecretBox, SecretTamperedError } from "./secret-box.js";
import { SecretError } from "./secret-error.js";

/** Values of an app version's `Secret.fromObject` / `fromDotenv` secrets, by secret id. */
export type LocalSecretValues = Record<string, Record<string, string>>;

/** A version's local secret values as stored: sealed, with the id of the master key that sealed them. */
export interface SealedLocalSecrets {
  sealed: Uint8Array;
  /** null for a version written before key ids were kept: it was sealed with the key in use then. */
  keyId: string | null;
}

/** What a version's sealed values are bound to: they open only for that app and version. */
function aad(appId: string, version: number): string {
  return `apps/${appId}/v${version}/local-secrets`;
}

/**
 * Seals `values` for the version the store is about to write (AppStore.deploy's `sealSecrets`).
 *
 * @example
 * await store.apps.deploy({ ...app, sealSecrets: sealLocalSecrets(secrets.box, { "local-0": { TOKEN: "t" } }) });
 */
export function sealLocalSecrets(
  box: SecretBox,
  values: LocalSecretValues,
): (appId: string, version: number) => { sealed: Uint8Array; keyId: string } {
  const plaintext = new TextEncoder().encode(JSON.stringify(values));
  return (appId, version) => ({ sealed: box.seal(plaintext, aad(appId, version)), keyId: box.keyId });
}

/** The values a version was deployed with; throws SecretError UNREADABLE unless `box` sealed them. */
export function openLocalSecrets(
  box: SecretBox,
  appId: string,
  version: number,
  stored: SealedLocalSecrets,
): LocalSecretValues {
  const plaintext = openBytes(box, appId, version, stored);
  try {
    return JSON.parse(new TextDecoder().decode(plaintext)) as LocalSecretValues;
  } finally {
    plaintext.fill(0);
  }
}

/**
 * Seals again under `to`, within the caller's transaction, the local secret values of every version
 * sealed with `from`. A version written before key ids were kept is tried with `from`: if it does not
 * open, some older key sealed it, and it is left as it is and counted as skipped. One that `from` sealed
 * but that fails its integrity check throws, so that the caller's transaction rolls back.
 */
export async function resealLocalSecrets(
  tx: Db,
  from: SecretBox,
  to: SecretBox,
): Promise<{ resealed: number; skipped: number }> {
  const rows = await tx.query<{
    app_id: string;
    version: number;
    local_secrets: Uint8Array;
    local_secrets_key_id: string | null;
  }>(
    `SELECT app_id, version, local_secrets, local_secrets_key_id FROM app_versions
     WHERE local_secrets IS NOT NULL AND (local_secrets_key_id = $1 OR local_secrets_key_id IS NULL) FOR UPDATE`,
    [from.keyId],
  );
  let resealed = 0;
  let skipped = 0;
  for (const row of rows) {
    const stored = { sealed: row.local_secrets, keyId: row.local_secrets_key_id };
    let plaintext: Uint8Array;
    try {
      plaintext = openBytes(from, row.app_id, row.version, stored);
    } catch (error) {
      if (stored.keyId !== null || !(error instanceof SecretError)) throw error;
      skipped++;
      continue;
    }
    const sealed = to.seal(plaintext, aad(row.app_id, row.version));
    plaintext.fill(0);
    await tx.query(
      "UPDATE app_versions SET local_secrets = $3::bytea, local_secrets_key_id = $4 WHERE app_id = $1 AND version = $2",
      [row.app_id, row.version, sealed, to.keyId],
    );
    resealed++;
  }
  return { resealed, skipped };
}

function openBytes(box: SecretBox, appId: string, version: number, stored: SealedLocalSecrets): Uint8Array {
  const which = `the local secret values of version ${version} of app ${appId}`;
  const redeploy = "or deploy the app again with its local secret values";
  if (stored.keyId !== null && stored.keyId !== box.keyId) {
    throw new SecretError(
      "UNREADABLE",
      `${which} were sealed with master key ${stored.keyId}, but the server's key is ${box.keyId}: start the server with the key they were sealed with (SKIFF_MASTER_KEY or the master key file), ${redeploy}`,
    );
  }
  try {
    return box.open(stored.sealed, aad(appId, version));
  } catch (error) {
    if (!(error instanceof SecretTamperedError)) throw error;
    throw new SecretError(
      "UNREADABLE",
      stored.keyId === null
        ? `${which} do not open with master key ${box.keyId}: they were sealed before key ids were kept, with another key or altered since; start the server with the key they were sealed with, ${redeploy}`
        : `${which} failed their integrity check: the stored value was altered or belongs to another version; ${redeploy}`,
      { cause: error },
    );
  }
}
