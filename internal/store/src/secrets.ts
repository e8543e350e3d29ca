import { ENV_VAR_NAME, RESOURCE_NAME } from "@skiff/protocol/constants";
import type { Db } from "./db.js";
import { resealLocalSecrets } from "./local-secrets.js";
import { type SecretBox, SecretTamperedError } from "./secret-box.js";
import { SecretError } from "./secret-error.js";

/** The workspace a new installation starts with (named "local"): what was made before workspaces is in it. */
export const LOCAL_WORKSPACE = "ws-local";

/** The environment every workspace starts with; it cannot be deleted. */
export const DEFAULT_ENVIRONMENT = "main";

/** The most a secret's values may take, as the JSON that is sealed. */
export const MAX_SECRET_BYTES = 64 * 1024;

export interface Environment {
  name: string;
  createdAt: Date;
}

/** A secret as listed: its keys, never its values. */
export interface SecretSummary {
  name: string;
  keys: string[];
  createdAt: Date;
  updatedAt: Date;
}

interface SealedRow {
  name: string;
  sealed: Uint8Array;
  key_id: string;
}

/**
 * Environments and the secrets in them. A secret's values are sealed as one JSON object by the box, with
 * `${workspace}/${env}/${name}` as additional data, so a sealed value opens only in its own row.
 *
 * @example
 * const { secrets } = new Store(db, { box: await SecretBox.load({ env: process.env.SKIFF_MASTER_KEY, keyFile }) });
 * await secrets.create("main", "db", { DATABASE_URL: "postgres://…" });
 * await secrets.get("main", "db"); // { DATABASE_URL: "postgres://…" }
 */
export class SecretStore {
  #box: SecretBox;

  constructor(
    private readonly db: Db,
    box: SecretBox,
  ) {
    this.#box = box;
  }

  /** The box secrets are sealed with now; it changes at `rotate`. */
  get box(): SecretBox {
    return this.#box;
  }

  async createEnvironment(name: string, workspace = LOCAL_WORKSPACE): Promise<Environment> {
    assertName("environment", name);
    const [row] = await this.db.query<{ name: string; created_at: Date | string }>(
      `INSERT INTO environments (workspace, name) VALUES ($1, $2) ON CONFLICT DO NOTHING
       RETURNING name, created_at`,
      [workspace, name],
    );
    if (!row) throw new SecretError("CONFLICT", `environment "${name}" already exists`);
    return { name: row.name, createdAt: new Date(row.created_at) };
  }

  async listEnvironments(workspace = LOCAL_WORKSPACE): Promise<Environment[]> {
    const rows = await this.db.query<{ name: string; created_at: Date | string }>(
      "SELECT name, created_at FROM environments WHERE workspace = $1 ORDER BY name",
      [workspace],
    );
    return rows.map((row) => ({ name: row.name, createdAt: new Date(row.created_at) }));
  }

  async hasEnvironment(name: string, workspace = LOCAL_WORKSPACE): Promise<boolean> {
    const rows = await this.db.query("SELECT 1 FROM environments WHERE workspace = $1 AND name = $2", [
      workspace,
      name,
    ]);
    return rows.length > 0;
  }

  /**
   * Deletes an empty environment: false if there is none by that name. Refuses `main`, and an environment
   * where apps still run or secrets remain.
   */
  async deleteEnvironment(name: string, workspace = LOCAL_WORKSPACE): Promise<boolean> {
    if (name === DEFAULT_ENVIRONMENT) {
      throw new SecretError("BAD_REQUEST", `the "${DEFAULT_ENVIRONMENT}" environment cannot be deleted`);
    }
    return this.db.transaction(async (tx) => {
      // Locked, so that a secret cannot be created in it meanwhile (create takes a share lock).
      const found = await tx.query("SELECT 1 FROM environments WHERE workspace = $1 AND name = $2 FOR UPDATE", [
        workspace,
        name,
      ]);
      if (found.length === 0) return false;
      const apps = await tx.query<{ name: string }>(
        "SELECT DISTINCT name FROM apps WHERE workspace = $1 AND env = $2 AND state = 'running' ORDER BY name",
        [workspace, name],
      );
      if (apps.length > 0) {
        throw new SecretError(
          "CONFLICT",
          `environment "${name}" still has running apps (${listed(apps.map((app) => app.name))}): stop them first with \`skiff app stop APP --env ${name}\``,
        );
      }
      const secrets = await tx.query<{ name: string }>(
        "SELECT name FROM secrets WHERE workspace = $1 AND env = $2 ORDER BY name",
        [workspace, name],
      );
      if (secrets.length > 0) {
        throw new SecretError(
          "CONFLICT",
          `environment "${name}" still has secrets (${listed(secrets.map((secret) => secret.name))}): delete them first`,
        );
      }
      const volumes = await tx.query<{ name: string }>(
        "SELECT name FROM volumes WHERE workspace = $1 AND env = $2 ORDER BY name",
        [workspace, name],
      );
      if (volumes.length > 0) {
        throw new SecretError(
          "CONFLICT",
          `environment "${name}" still has volumes (${listed(volumes.map((volume) => volume.name))}): delete them first with \`skiff volume delete NAME --env ${name}\``,
        );
      }
      await tx.query("DELETE FROM environments WHERE workspace = $1 AND name = $2", [workspace, name]);
      return true;
    });
  }

  /**
   * Creates a secret holding `values` (environment variables by name), or replaces an existing one's
   * values when `overwrite` is set.
   */
  async create(
    env: string,
    name: string,
    values: Record<string, string>,
    options: { overwrite?: boolean; workspace?: string } = {},
  ): Promise<SecretSummary> {
    const workspace = options.workspace ?? LOCAL_WORKSPACE;
    assertName("secret", name);
    if (typeof values !== "object" || values === null || Array.isArray(values)) {
      throw new SecretError("BAD_REQUEST", `secret "${name}": values must be an object of strings by key`);
    }
    const keys = Object.keys(values);
    if (keys.length === 0) throw new SecretError("BAD_REQUEST", `secret "${name}" needs at least one key`);
    for (const key of keys) assertKey(name, key, values[key]);
    const plaintext = new TextEncoder().encode(JSON.stringify(values));
    if (plaintext.byteLength > MAX_SECRET_BYTES) {
      throw new SecretError(
        "BAD_REQUEST",
        `secret "${name}" is ${kib(plaintext.byteLength)} KiB; a secret holds at most ${kib(MAX_SECRET_BYTES)} KiB`,
      );
    }
    const sealed = this.#box.seal(plaintext, rowId(workspace, env, name));
    return this.db.transaction(async (tx) => {
      // A share lock: the environment cannot be deleted until this commits.
      const found = await tx.query("SELECT 1 FROM environments WHERE workspace = $1 AND name = $2 FOR SHARE", [
        workspace,
        env,
      ]);
      if (found.length === 0) {
        throw new SecretError("NOT_FOUND", `environment "${env}" does not exist: create it first`);
      }
      const [row] = await tx.query<SummaryRow>(
        `INSERT INTO secrets (workspace, env, name, keys, sealed, key_id) VALUES ($1, $2, $3, $4::text[], $5::bytea, $6)
         ON CONFLICT (workspace, env, name) DO ${
           options.overwrite
             ? "UPDATE SET keys = excluded.keys, sealed = excluded.sealed, key_id = excluded.key_id, updated_at = now()"
             : "NOTHING"
         }
         RETURNING ${SUMMARY_COLUMNS}`,
        [workspace, env, name, keys, sealed, this.#box.keyId],
      );
      if (!row) {
        throw new SecretError(
          "CONFLICT",
          `secret "${name}" already exists in environment "${env}": delete it first, or overwrite it`,
        );
      }
      return toSummary(row);
    });
  }

  /** The secrets of an environment, by name: their keys, never their values. */
  async list(env: string, workspace = LOCAL_WORKSPACE): Promise<SecretSummary[]> {
    const rows = await this.db.query<SummaryRow>(
      `SELECT ${SUMMARY_COLUMNS} FROM secrets WHERE workspace = $1 AND env = $2 ORDER BY name`,
      [workspace, env],
    );
    return rows.map(toSummary);
  }

  /** A secret's values, or undefined if there is none by that name. */
  async get(env: string, name: string, workspace = LOCAL_WORKSPACE): Promise<Record<string, string> | undefined> {
    const [row] = await this.db.query<SealedRow>(
      "SELECT name, sealed, key_id FROM secrets WHERE workspace = $1 AND env = $2 AND name = $3",
      [workspace, env, name],
    );
    return row ? this.#open(workspace, env, row) : undefined;
  }

  /** The values of those of `names` that exist, in one query. */
  async getMany(
    env: string,
    names: readonly string[],
    workspace = LOCAL_WORKSPACE,
  ): Promise<Map<string, Record<string, string>>> {
    const found = new Map<string, Record<string, string>>();
    if (names.length === 0) return found;
    const rows = await this.db.query<SealedRow>(
      "SELECT name, sealed, key_id FROM secrets WHERE workspace = $1 AND env = $2 AND name = ANY($3::text[])",
      [workspace, env, [...names]],
    );
    for (const row of rows) found.set(row.name, this.#open(workspace, env, row));
    return found;
  }

  /** Deletes a secret: false if there was none by that name. */
  async delete(env: string, name: string, workspace = LOCAL_WORKSPACE): Promise<boolean> {
    const rows = await this.db.query(
      "DELETE FROM secrets WHERE workspace = $1 AND env = $2 AND name = $3 RETURNING name",
      [workspace, env, name],
    );
    return rows.length > 0;
  }

  /**
   * Re-seals everything sealed with the current master key under `newBox`'s, in one transaction: the
   * secrets, and the local secret values of app versions. From then on this store seals and opens with
   * `newBox` (it is changed in place, so whoever holds it keeps using it). Persist the new key first (see
   * SecretBox.writeKeyFile), and keep the old one until this returns: once it commits, the old key opens
   * nothing. Rows sealed with neither key are left as they are; so is a version from before key ids were
   * kept that the current key does not open (counted as `skipped`). Running it again re-seals nothing more.
   */
  async rotate(newBox: SecretBox): Promise<{ secrets: number; localSecrets: number; skipped: number }> {
    const oldBox = this.#box;
    if (newBox.keyId === oldBox.keyId) return { secrets: 0, localSecrets: 0, skipped: 0 };
    const counts = await this.db.transaction(async (tx) => {
      const rows = await tx.query<SealedRow & { workspace: string; env: string }>(
        "SELECT workspace, env, name, sealed, key_id FROM secrets WHERE key_id = $1 FOR UPDATE",
        [oldBox.keyId],
      );
      for (const row of rows) {
        const aad = rowId(row.workspace, row.env, row.name);
        const plaintext = openSealed(oldBox, row.workspace, row.env, row);
        const sealed = newBox.seal(plaintext, aad);
        plaintext.fill(0);
        await tx.query(
          "UPDATE secrets SET sealed = $4::bytea, key_id = $5 WHERE workspace = $1 AND env = $2 AND name = $3",
          [row.workspace, row.env, row.name, sealed, newBox.keyId],
        );
      }
      const local = await resealLocalSecrets(tx, oldBox, newBox);
      return { secrets: rows.length, localSecrets: local.resealed, skipped: local.skipped };
    });
    this.#box = newBox;
    return counts;
  }

  #open(workspace: string, env: string, row: SealedRow): Record<string, string> {
    return JSON.parse(new TextDecoder().decode(openSealed(this.#box, workspace, env, row))) as Record<string, string>;
  }
}

interface SummaryRow {
  name: string;
  keys: string[];
  created_at: Date | string;
  updated_at: Date | string;
}

const SUMMARY_COLUMNS = "name, keys, created_at, updated_at";

function toSummary(row: SummaryRow): SecretSummary {
  return {
    name: row.name,
    keys: row.keys,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/** The additional data a secret is sealed with: what binds it to its row. */
function rowId(workspace: string, env: string, name: string): string {
  return `${workspace}/${env}/${name}`;
}

function openSealed(box: SecretBox, workspace: string, env: string, row: SealedRow): Uint8Array {
  const which = `secret "${row.name}" in environment "${env}"`;
  if (row.key_id !== box.keyId) {
    throw new SecretError(
      "UNREADABLE",
      `${which} was sealed with master key ${row.key_id}, but the server's key is ${box.keyId}: start the server with the key it was sealed with (SKIFF_MASTER_KEY or the master key file), or set the secret again`,
    );
  }
  try {
    return box.open(row.sealed, rowId(workspace, env, row.name));
  } catch (error) {
    if (!(error instanceof SecretTamperedError)) throw error;
    throw new SecretError(
      "UNREADABLE",
      `${which} failed its integrity check: its stored value was altered or belongs to another secret; set it again`,
      { cause: error },
    );
  }
}

function assertName(what: "environment" | "secret", name: string): void {
  if (typeof name !== "string" || !RESOURCE_NAME.test(name)) {
    throw new SecretError(
      "BAD_REQUEST",
      `${what} name ${JSON.stringify(name)} is not valid: use letters, digits, '-' and '_', at most 63, starting with a letter or digit`,
    );
  }
}

/** Values reach this from request bodies: checked to be strings, and never put in a message. */
function assertKey(secret: string, key: string, value: unknown): void {
  if (key.includes("=")) {
    // Most likely KEY=value given as a key: the part after '=' may be the value, so it is not repeated.
    throw new SecretError(
      "BAD_REQUEST",
      `secret "${secret}": a key (${JSON.stringify(key.slice(0, Math.min(key.indexOf("="), 64)))}=…) contains '=': give keys and values apart`,
    );
  }
  if (!ENV_VAR_NAME.test(key)) {
    throw new SecretError(
      "BAD_REQUEST",
      `secret "${secret}": key ${JSON.stringify(key)} is not an environment variable name (letters, digits and '_', not starting with a digit)`,
    );
  }
  if (key.startsWith("SKIFF_")) {
    throw new SecretError(
      "BAD_REQUEST",
      `secret "${secret}": key "${key}" is reserved (names starting with SKIFF_ are)`,
    );
  }
  if (typeof value !== "string") {
    throw new SecretError("BAD_REQUEST", `secret "${secret}": the value of key "${key}" must be a string`);
  }
}

function listed(names: string[]): string {
  return names.length > 5 ? `${names.slice(0, 5).join(", ")} and ${names.length - 5} more` : names.join(", ");
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(bytes % 1024 === 0 ? 0 : 1);
}
