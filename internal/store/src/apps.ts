import { randomUUID } from "node:crypto";
import type { FunctionSpec } from "@skiff/protocol";
import { toBytes } from "./bytes.js";
import type { Db } from "./db.js";
import type { SealedLocalSecrets } from "./local-secrets.js";
import type { Scope } from "./scope.js";

/** An app as stored: one run (ephemeral or detached), or one name deployed in versions. */
export interface AppRow {
  id: string;
  workspace: string;
  name: string;
  env: string;
  /** ephemeral: stops when its client goes; detached: `run --detach`; deployed: versioned, by name. */
  mode: "ephemeral" | "detached" | "deployed";
  state: "running" | "stopped";
  bundleHash: string;
  /** The version that runs now (deployed apps count their deploys; others stay at 1). */
  version: number;
  createdAt: Date;
}

/** A function or class of an app, as its latest version deployed it. */
export interface FunctionRow {
  id: string;
  appId: string;
  name: string;
  spec: FunctionSpec;
  /** The app version that last deployed it: a function left out of a later version is removed. */
  version: number;
}

/** Seals a version's local secret values, given the app and version they belong to (see sealLocalSecrets). */
export type SealSecrets = (appId: string, version: number) => { sealed: Uint8Array; keyId: string } | undefined;

/** One deploy of an app. */
export interface AppVersion {
  version: number;
  bundleHash: string;
  functions: FunctionSpec[];
  /** e.g. "rollback to v2". */
  note: string;
  createdAt: Date;
}

/**
 * Apps, their versions and their functions: what a deploy or a run writes, and what the engine looks up
 * to place calls. A function keeps its id across versions.
 */
export class AppStore {
  constructor(private readonly db: Db) {}

  /** An app that runs once (ephemeral or detached): version 1, new function ids. */
  async create(app: {
    workspace: string;
    name: string;
    env: string;
    mode: "ephemeral" | "detached";
    bundleHash: string;
    functions: FunctionSpec[];
    sealSecrets?: SealSecrets;
  }): Promise<{ app: AppRow; functions: FunctionRow[] }> {
    return this.db.transaction(async (tx) => {
      const id = `ap-${randomUUID()}`;
      await tx.query(
        "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, $2, $3, $4, $5, 'running', $6)",
        [id, app.workspace, app.name, app.env, app.mode, app.bundleHash],
      );
      return this.addVersion(tx, id, 1, app.bundleHash, app.functions, "", app.sealSecrets);
    });
  }

  /**
   * Deploys an app by name: the first deploy creates it, later ones add a version. A function keeps its id
   * across versions; one left out of this version stays in the store as removed. Two deploys of one app
   * at once are serialized by the row lock (a new app's name by its unique index).
   */
  async deploy(app: {
    workspace: string;
    name: string;
    env: string;
    bundleHash: string;
    functions: FunctionSpec[];
    note?: string;
    sealSecrets?: SealSecrets;
  }): Promise<{ app: AppRow; functions: FunctionRow[]; previous: number | undefined }> {
    return this.db.transaction(async (tx) => {
      const [current] = await tx.query<AppDbRow>(
        `SELECT ${APP_COLUMNS} FROM apps
         WHERE workspace = $1 AND env = $2 AND name = $3 AND mode = 'deployed' AND state = 'running' FOR UPDATE`,
        [app.workspace, app.env, app.name],
      );
      const id = current?.id ?? `ap-${randomUUID()}`;
      const version = (current?.version ?? 0) + 1;
      if (current) {
        await tx.query("UPDATE apps SET version = $2, bundle_hash = $3 WHERE id = $1", [id, version, app.bundleHash]);
      } else {
        await tx.query(
          "INSERT INTO apps (id, workspace, name, env, mode, state, bundle_hash) VALUES ($1, $2, $3, $4, 'deployed', 'running', $5)",
          [id, app.workspace, app.name, app.env, app.bundleHash],
        );
      }
      const added = await this.addVersion(
        tx,
        id,
        version,
        app.bundleHash,
        app.functions,
        app.note ?? "",
        app.sealSecrets,
      );
      return { ...added, previous: current?.version };
    });
  }

  /**
   * A new version of a running app that is not deployed (`skiff serve` reloading its file): the same app
   * id, URLs and functions by name, the next version number. Undefined if the app is not running (or is
   * deployed: that takes `deploy`).
   */
  async addRunVersion(
    appId: string,
    next: { bundleHash: string; functions: FunctionSpec[]; sealSecrets?: SealSecrets },
  ): Promise<{ app: AppRow; functions: FunctionRow[]; previous: number } | undefined> {
    return this.db.transaction(async (tx) => {
      const [current] = await tx.query<AppDbRow>(
        `SELECT ${APP_COLUMNS} FROM apps WHERE id = $1 AND mode <> 'deployed' AND state = 'running' FOR UPDATE`,
        [appId],
      );
      if (!current) return undefined;
      const version = current.version + 1;
      await tx.query("UPDATE apps SET version = $2, bundle_hash = $3 WHERE id = $1", [appId, version, next.bundleHash]);
      const added = await this.addVersion(tx, appId, version, next.bundleHash, next.functions, "", next.sealSecrets);
      return { ...added, previous: current.version };
    });
  }

  /** Writes version `version` of an app: its functions (new ids only for new names) and its record. */
  private async addVersion(
    tx: Db,
    appId: string,
    version: number,
    bundleHash: string,
    specs: FunctionSpec[],
    note: string,
    sealSecrets: SealSecrets | undefined,
  ): Promise<{ app: AppRow; functions: FunctionRow[] }> {
    const functions: FunctionRow[] = [];
    for (const spec of specs) {
      const [row] = await tx.query<{ id: string }>(
        `INSERT INTO functions (id, app_id, name, spec, version) VALUES ($1, $2, $3, $4::text::jsonb, $5)
         ON CONFLICT (app_id, name) DO UPDATE SET spec = excluded.spec, version = excluded.version RETURNING id`,
        [`fu-${randomUUID()}`, appId, spec.name, JSON.stringify(spec), version],
      );
      functions.push({ id: row!.id, appId, name: spec.name, spec, version });
    }
    const local = sealSecrets?.(appId, version);
    await tx.query(
      `INSERT INTO app_versions (app_id, version, bundle_hash, manifest, note, local_secrets, local_secrets_key_id)
       VALUES ($1, $2, $3, $4::text::jsonb, $5, $6, $7)`,
      [appId, version, bundleHash, JSON.stringify(specs), note, local?.sealed ?? null, local?.keyId ?? null],
    );
    const [row] = await tx.query<AppDbRow>(`SELECT ${APP_COLUMNS} FROM apps WHERE id = $1`, [appId]);
    return { app: toApp(row!), functions };
  }

  /** The sealed values of a version's `fromObject`/`fromDotenv` secrets, if it has any (open with openLocalSecrets). */
  async localSecrets(appId: string, version: number): Promise<SealedLocalSecrets | undefined> {
    const [row] = await this.db.query<{ local_secrets: Uint8Array | null; local_secrets_key_id: string | null }>(
      "SELECT local_secrets, local_secrets_key_id FROM app_versions WHERE app_id = $1 AND version = $2",
      [appId, version],
    );
    return row?.local_secrets ? { sealed: toBytes(row.local_secrets), keyId: row.local_secrets_key_id } : undefined;
  }

  /** An app's versions, newest first. */
  async versions(appId: string): Promise<AppVersion[]> {
    const rows = await this.db.query<{
      version: number;
      bundle_hash: string;
      manifest: unknown;
      note: string;
      created_at: Date | string;
    }>(
      "SELECT version, bundle_hash, manifest, note, created_at FROM app_versions WHERE app_id = $1 ORDER BY version DESC",
      [appId],
    );
    return rows.map((row) => ({
      version: row.version,
      bundleHash: row.bundle_hash,
      functions: (typeof row.manifest === "string" ? JSON.parse(row.manifest) : row.manifest) as FunctionSpec[],
      note: row.note,
      createdAt: new Date(row.created_at),
    }));
  }

  /**
   * The app `nameOrId` names in `scope`: an id (of an app in the scope's workspace, in any environment), or
   * the name of a running deployed (else detached) app in the scope's environment.
   */
  async find(scope: Scope, nameOrId: string): Promise<AppRow | undefined> {
    if (nameOrId.startsWith("ap-")) {
      const app = await this.get(nameOrId);
      return app?.workspace === scope.workspace ? app : undefined;
    }
    const [row] = await this.db.query<AppDbRow>(
      `SELECT ${APP_COLUMNS} FROM apps
       WHERE workspace = $1 AND env = $2 AND name = $3 AND state = 'running' AND mode <> 'ephemeral'
       ORDER BY mode = 'deployed' DESC, created_at DESC LIMIT 1`,
      [scope.workspace, scope.env, nameOrId],
    );
    return row ? toApp(row) : undefined;
  }

  /** Overrides a function's autoscaling settings until its next deploy. */
  async updateFunctionSpec(functionId: string, spec: FunctionSpec): Promise<void> {
    await this.db.query("UPDATE functions SET spec = $2::text::jsonb WHERE id = $1", [
      functionId,
      JSON.stringify(spec),
    ]);
  }

  /** Functions of running apps that keep containers warm (`minContainers` > 0). */
  async warmFunctions(): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT f.id FROM functions f JOIN apps a ON a.id = f.app_id
       WHERE a.state = 'running' AND f.version = a.version AND (f.spec->>'minContainers')::int > 0`,
    );
    return rows.map((row) => row.id);
  }

  /** An app by id, in any workspace. */
  async get(appId: string): Promise<AppRow | undefined> {
    const [row] = await this.db.query<AppDbRow>(`SELECT ${APP_COLUMNS} FROM apps WHERE id = $1`, [appId]);
    return row ? toApp(row) : undefined;
  }

  /** The apps of an environment, newest first (at most 200). */
  async list(scope: Scope): Promise<AppRow[]> {
    const rows = await this.db.query<AppDbRow>(
      `SELECT ${APP_COLUMNS} FROM apps WHERE workspace = $1 AND env = $2 ORDER BY created_at DESC LIMIT 200`,
      [scope.workspace, scope.env],
    );
    return rows.map(toApp);
  }

  /** The labels of the web functions of each app's current version, by app id (apps with none are left out). */
  async webLabelsOf(appIds: string[]): Promise<Map<string, string[]>> {
    const labels = new Map<string, string[]>();
    if (appIds.length === 0) return labels;
    const rows = await this.db.query<{ app_id: string; label: string }>(
      `SELECT f.app_id, f.spec->'web'->>'label' AS label FROM functions f JOIN apps a ON a.id = f.app_id
       WHERE f.app_id = ANY($1::text[]) AND f.version = a.version AND f.spec->'web' IS NOT NULL
       ORDER BY f.name`,
      [appIds],
    );
    for (const row of rows) labels.set(row.app_id, [...(labels.get(row.app_id) ?? []), row.label]);
    return labels;
  }

  /** Marks an app stopped; the engine fails its unfinished inputs. */
  async stop(appId: string): Promise<void> {
    await this.db.query("UPDATE apps SET state = 'stopped', stopped_at = now() WHERE id = $1 AND state = 'running'", [
      appId,
    ]);
  }

  /** Records that the client of an ephemeral app is still there. */
  async touch(appId: string): Promise<void> {
    await this.db.query("UPDATE apps SET client_seen_at = now() WHERE id = $1", [appId]);
  }

  /** Ephemeral apps whose client has been gone longer than `graceMs`. */
  async abandoned(graceMs: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      "SELECT id FROM apps WHERE state = 'running' AND mode = 'ephemeral' AND client_seen_at < now() - $1 * interval '1 millisecond'",
      [graceMs],
    );
    return rows.map((row) => row.id);
  }

  /** A function by id, with its app (whatever version last deployed it). */
  async getFunction(functionId: string): Promise<(FunctionRow & { app: AppRow }) | undefined> {
    const [row] = await this.db.query<FunctionDbRow & AppDbRow & { fid: string }>(
      `SELECT f.id AS fid, f.name AS fname, f.spec, f.version AS fversion, ${APP_COLUMNS_A}
       FROM functions f JOIN apps a ON a.id = f.app_id WHERE f.id = $1`,
      [functionId],
    );
    if (!row) return undefined;
    return {
      id: row.fid,
      appId: row.id,
      name: row.fname,
      spec: parseSpec(row.spec),
      version: row.fversion,
      app: toApp(row),
    };
  }

  /** The ids of the functions and classes of an app's current version, by name. */
  async functionIds(appId: string): Promise<Record<string, string>> {
    const rows = await this.db.query<{ id: string; name: string }>(
      "SELECT f.id, f.name FROM functions f JOIN apps a ON a.id = f.app_id WHERE a.id = $1 AND f.version = a.version",
      [appId],
    );
    return Object.fromEntries(rows.map((row) => [row.name, row.id]));
  }

  /**
   * A function of the running app of this name in this environment, in its current version: the deployed
   * app first, else the newest app run with --detach.
   */
  async findFunction(scope: Scope, appName: string, name: string): Promise<FunctionRow | undefined> {
    const [row] = await this.db.query<FunctionDbRow & { fid: string; app_id: string }>(
      `SELECT f.id AS fid, f.app_id, f.name AS fname, f.spec, f.version AS fversion
       FROM functions f JOIN apps a ON a.id = f.app_id
       WHERE a.workspace = $1 AND a.env = $2 AND a.name = $3 AND f.name = $4 AND a.state = 'running'
         AND f.version = a.version
       ORDER BY a.mode = 'deployed' DESC, a.created_at DESC LIMIT 1`,
      [scope.workspace, scope.env, appName, name],
    );
    return row
      ? { id: row.fid, appId: row.app_id, name: row.fname, spec: parseSpec(row.spec), version: row.fversion }
      : undefined;
  }

  /**
   * The web function a gateway URL names: the function labelled `label` in the current version of the
   * running app `app` of the environment `env` of the workspace named `workspaceName` (the deployed app
   * first, else the newest run).
   */
  async findWebFunction(where: {
    workspaceName: string;
    env: string;
    app: string;
    label: string;
  }): Promise<{ functionId: string } | undefined> {
    const [row] = await this.db.query<{ id: string }>(
      `SELECT f.id FROM functions f JOIN apps a ON a.id = f.app_id JOIN workspaces w ON w.id = a.workspace
       WHERE w.name = $1 AND a.env = $2 AND a.name = $3 AND a.state = 'running' AND f.version = a.version
         AND f.spec->'web'->>'label' = $4
       ORDER BY a.mode = 'deployed' DESC, a.created_at DESC LIMIT 1`,
      [where.workspaceName, where.env, where.app, where.label],
    );
    return row ? { functionId: row.id } : undefined;
  }

  /**
   * The web function a host name `LABEL-APP.ENV.DOMAIN` names (`labelApp` is `LABEL-APP`): as
   * `findWebFunction`, names matched exactly (so only lower-case names are reached by host: a host name has
   * no case, and `Acme` and `acme` are two workspaces). None when two apps' `LABEL-APP` read alike (label
   * `a-b` of app `c`, label `a` of app `b-c`): a host name never picks one of them by chance.
   */
  async findWebFunctionByHost(where: {
    workspaceName: string;
    env: string;
    labelApp: string;
  }): Promise<{ functionId: string } | undefined> {
    const rows = await this.db.query<{ id: string; app: string; label: string }>(
      `SELECT f.id, a.name AS app, f.spec->'web'->>'label' AS label
       FROM functions f JOIN apps a ON a.id = f.app_id JOIN workspaces w ON w.id = a.workspace
       WHERE w.name = $1 AND a.env = $2 AND a.state = 'running' AND f.version = a.version
         AND (f.spec->'web'->>'label') || '-' || a.name = $3
       ORDER BY a.mode = 'deployed' DESC, a.created_at DESC`,
      [where.workspaceName, where.env, where.labelApp],
    );
    const [first] = rows;
    if (!first || rows.some((row) => row.app !== first.app || row.label !== first.label)) return undefined;
    return { functionId: first.id };
  }

  /**
   * The running apps of an environment whose current version has a web function labelled one of `labels`,
   * but for the deployed app named `exceptDeployed` (the one a deploy replaces) and the app `exceptApp` (one
   * that gets a new version): what new labels clash with.
   */
  async webLabelsInUse(
    scope: Scope,
    labels: string[],
    exceptDeployed?: string,
    exceptApp?: string,
  ): Promise<{ label: string; appId: string; appName: string; appMode: AppRow["mode"]; functionName: string }[]> {
    if (labels.length === 0) return [];
    const rows = await this.db.query<{
      label: string;
      app_id: string;
      app_name: string;
      mode: AppRow["mode"];
      fname: string;
    }>(
      `SELECT f.spec->'web'->>'label' AS label, a.id AS app_id, a.name AS app_name, a.mode, f.name AS fname
       FROM functions f JOIN apps a ON a.id = f.app_id
       WHERE a.workspace = $1 AND a.env = $2 AND a.state = 'running' AND f.version = a.version
         AND f.spec->'web'->>'label' = ANY($3::text[]) AND NOT (a.mode = 'deployed' AND a.name = $4) AND a.id <> $5`,
      [scope.workspace, scope.env, labels, exceptDeployed ?? "", exceptApp ?? ""],
    );
    return rows.map((row) => ({
      label: row.label,
      appId: row.app_id,
      appName: row.app_name,
      appMode: row.mode,
      functionName: row.fname,
    }));
  }

  /** The function and class names of the running app `appName` (its newest run), for an error naming them. */
  async functionNamesOf(scope: Scope, appName: string): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      `SELECT f.name FROM functions f
       WHERE f.app_id = (SELECT a.id FROM apps a
                         WHERE a.workspace = $1 AND a.env = $2 AND a.name = $3 AND a.state = 'running'
                         ORDER BY a.mode = 'deployed' DESC, a.created_at DESC LIMIT 1)
         AND f.version = (SELECT a.version FROM apps a WHERE a.id = f.app_id)
       ORDER BY f.name`,
      [scope.workspace, scope.env, appName],
    );
    return rows.map((row) => row.name);
  }
}

const APP_COLUMNS = "id, workspace, name, env, mode, state, bundle_hash, version, created_at";
const APP_COLUMNS_A = "a.id, a.workspace, a.name, a.env, a.mode, a.state, a.bundle_hash, a.version, a.created_at";

interface AppDbRow {
  id: string;
  workspace: string;
  name: string;
  env: string;
  mode: AppRow["mode"];
  state: AppRow["state"];
  bundle_hash: string;
  version: number;
  created_at: Date | string;
}

interface FunctionDbRow {
  fname: string;
  spec: unknown;
  fversion: number;
}

function toApp(row: AppDbRow): AppRow {
  return {
    id: row.id,
    workspace: row.workspace,
    name: row.name,
    env: row.env,
    mode: row.mode,
    state: row.state,
    bundleHash: row.bundle_hash,
    version: row.version,
    createdAt: new Date(row.created_at),
  };
}

function parseSpec(spec: unknown): FunctionSpec {
  return (typeof spec === "string" ? JSON.parse(spec) : spec) as FunctionSpec;
}
