import { randomUUID } from "node:crypto";
import type { ErrorCode, FunctionSpec, OutputStatus, Payload } from "@skiff/protocol";
import { decodeMessage, encodeMessage } from "@skiff/protocol/frame";
import { groupBy } from "@skiff/protocol/group-by";
import type { Db } from "./db.js";
import type { SealedLocalSecrets } from "./local-secrets.js";
import { migrate } from "./schema.js";
import { newSecret } from "./tokens.js";

/** Where a resource lives: a workspace and one of its environments. */
export interface Scope {
  workspace: string;
  env: string;
}

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

/** An input that reached its final state: its caller can be told. */
export interface FinishedInput {
  inputId: string;
  callId: string;
  idx: number;
  status: OutputStatus;
  code: ErrorCode | undefined;
  data: Payload;
}

/** A run of a call's inputs with consecutive indices and ids, written as one row. */
export interface InputChunk {
  callId: string;
  functionId: string;
  firstIdx: number;
  /** The id of the first input; the others follow (ids from `reserveInputIds`). */
  firstId: number;
  args: Payload[];
}

interface AttemptCounts {
  inputId: string;
  /** The latest attempt handed out. */
  attempt: number;
  userFailures: number;
  infraFailures: number;
}

/** An input's final result, with the counts it ended with. */
export interface ResultRecord extends AttemptCounts {
  callId: string;
  idx: number;
  status: OutputStatus;
  code?: ErrorCode | undefined;
  data: Payload;
}

/** An unfinished input's counts, and when it may run next (ms since the epoch). */
export interface ProgressRecord extends AttemptCounts {
  runAfterMs: number;
}

export interface UnfinishedInput extends ProgressRecord {
  callId: string;
  functionId: string;
  idx: number;
  args: Payload;
}

/** What `Store.persist` writes at once. */
export interface WriteBatch {
  chunks: InputChunk[];
  results: ResultRecord[];
  progress: ProgressRecord[];
  /**
   * Calls with no unfinished input left, a restart need not look at them. A call that also has a chunk
   * in the batch finished after it.
   */
  finishedCalls: string[];
}

export interface LiveContainer {
  id: string;
  workerId: string;
  functionId: string;
  state: "starting" | "running";
  /** The app version it runs. */
  version: number;
}

/** How many input ids `reserveInputIds` reserves at once: the step of `inputs_id_seq`. */
export const INPUT_ID_BLOCK = 1024;

// Postgres allows 65,535 parameters per statement; stay far below with room for wide rows.
const ROWS_PER_STATEMENT = 1000;

/** postgres.js and cbor-x hand back Buffers; normalize so callers see one type. */
function toBytes(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * `($1::a,$2::b),($3::a,$4::b)…` for a multi-row VALUES list, numbering after `offset` parameters;
 * `lead` cells (e.g. a shared `$1`) start every row.
 */
function placeholders(rows: number, casts: string[], options: { offset?: number; lead?: string[] } = {}): string {
  const offset = options.offset ?? 0;
  const out: string[] = [];
  for (let r = 0; r < rows; r++) {
    const cells = casts.map((cast, c) => `$${offset + r * casts.length + c + 1}${cast}`);
    out.push(`(${[...(options.lead ?? []), ...cells].join(",")})`);
  }
  return out.join(",");
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

type ResultTuple = [number, number, OutputStatus, ErrorCode | null, Payload, number, number, number];

function decodeResults(callId: string, bytes: Uint8Array): FinishedInput[] {
  return (decodeMessage(toBytes(bytes)) as ResultTuple[]).map(([inputId, idx, status, code, data]) => ({
    inputId: String(inputId),
    callId,
    idx,
    status,
    code: code ?? undefined,
    data: "inline" in data ? { inline: toBytes(data.inline) } : data,
  }));
}

/** Everything the control plane persists, as domain operations over one Db. Batched on hot paths. */
export class Store {
  constructor(readonly db: Db) {}

  async migrate(): Promise<void> {
    await migrate(this.db);
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  // ---- apps and functions ----

  /** An app that runs once (ephemeral or detached): version 1, new function ids. */
  async createApp(app: {
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
  async deployApp(app: {
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
  async appVersions(appId: string): Promise<AppVersion[]> {
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
  async findApp(scope: Scope, nameOrId: string): Promise<AppRow | undefined> {
    if (nameOrId.startsWith("ap-")) {
      const app = await this.getApp(nameOrId);
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

  async getApp(appId: string): Promise<AppRow | undefined> {
    const [row] = await this.db.query<AppDbRow>(`SELECT ${APP_COLUMNS} FROM apps WHERE id = $1`, [appId]);
    return row ? toApp(row) : undefined;
  }

  async listApps(scope: Scope): Promise<AppRow[]> {
    const rows = await this.db.query<AppDbRow>(
      `SELECT ${APP_COLUMNS} FROM apps WHERE workspace = $1 AND env = $2 ORDER BY created_at DESC LIMIT 200`,
      [scope.workspace, scope.env],
    );
    return rows.map(toApp);
  }

  /** Marks an app stopped; the engine fails its unfinished inputs. */
  async stopApp(appId: string): Promise<void> {
    await this.db.query("UPDATE apps SET state = 'stopped', stopped_at = now() WHERE id = $1 AND state = 'running'", [
      appId,
    ]);
  }

  /** Records that the client of an ephemeral app is still there. */
  async touchApp(appId: string): Promise<void> {
    await this.db.query("UPDATE apps SET client_seen_at = now() WHERE id = $1", [appId]);
  }

  /** Ephemeral apps whose client has been gone longer than `graceMs`. */
  async abandonedApps(graceMs: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      "SELECT id FROM apps WHERE state = 'running' AND mode = 'ephemeral' AND client_seen_at < now() - $1 * interval '1 millisecond'",
      [graceMs],
    );
    return rows.map((row) => row.id);
  }

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

  // ---- calls and inputs ----

  /**
   * Reserves a block of INPUT_ID_BLOCK input ids for the engine to hand out, so that it can dispatch an
   * input before its chunk is written. Returns the first id of the block.
   */
  async reserveInputIds(): Promise<number> {
    const [row] = await this.db.query<{ first: string }>("SELECT nextval('input_ids')::text AS first");
    return Number(row!.first);
  }

  /**
   * Writes what the engine did since its last write, in one statement: new input chunks (a chunk already
   * written under the same (callId, firstIdx) is left alone, so a resend changes nothing), final results,
   * the retry counts of unfinished inputs, and calls left with nothing unfinished. Returns, per chunk
   * that was new, its call and first index.
   */
  async persist(batch: WriteBatch): Promise<{ callId: string; firstIdx: number }[]> {
    const params: unknown[] = [];
    const p = (value: unknown, cast: string) => {
      params.push(value);
      return `$${params.length}${cast}`;
    };
    const parts: string[] = [];
    let returning = "SELECT NULL::text AS call_id, NULL::int AS first_idx WHERE false";
    const finished = new Set(batch.finishedCalls);
    if (batch.chunks.length > 0) {
      // A call with a chunk here is written with it; finished only if it finished after that chunk.
      const calls = new Map(batch.chunks.map((c) => [c.callId, c.functionId]));
      const callRows = [...calls].map(
        ([id, fid]) => `(${p(id, "::uuid")},${p(fid, "::text")},${p(finished.delete(id), "::bool")})`,
      );
      const chunkRows = batch.chunks.map(
        (c) =>
          `(${p(c.callId, "::uuid")},${p(c.firstIdx, "::int")},${p(c.firstId, "::bigint")},${p(c.args.length, "::int")},${p(c.functionId, "::text")},${p(encodeMessage(c.args), "::bytea")})`,
      );
      parts.push(
        `new_calls AS (INSERT INTO calls (id, function_id, total, finished_at)
           SELECT id, fid, 0, CASE WHEN done THEN now() END FROM (VALUES ${callRows.join(",")}) AS v(id, fid, done)
           ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at)`,
        `new_chunks AS (INSERT INTO input_chunks (call_id, first_idx, first_id, count, function_id, args) VALUES ${chunkRows.join(",")}
           ON CONFLICT (call_id, first_idx) DO NOTHING RETURNING call_id, first_idx)`,
      );
      returning = "SELECT call_id::text, first_idx FROM new_chunks";
    }
    if (batch.results.length > 0) {
      const resultRows = [...groupBy(batch.results, (r) => r.callId)].map(([callId, results]) => {
        const tuples = results.map((r) => [
          Number(r.inputId),
          r.idx,
          r.status,
          r.code ?? null,
          r.data,
          r.attempt,
          r.userFailures,
          r.infraFailures,
        ]);
        return `(${p(callId, "::uuid")},${p(tuples.length, "::int")},${p(encodeMessage(tuples), "::bytea")})`;
      });
      parts.push(`new_results AS (INSERT INTO result_chunks (call_id, count, results) VALUES ${resultRows.join(",")})`);
    }
    if (finished.size > 0) {
      parts.push(
        `finished AS (UPDATE calls SET finished_at = now() WHERE id = ANY(${p([...finished], "::uuid[]")}) AND finished_at IS NULL)`,
      );
    }
    const rows =
      parts.length === 0
        ? []
        : await this.db.query<{ call_id: string; first_idx: number }>(`WITH ${parts.join(",\n")} ${returning}`, params);
    // The latest counts of an input win; one statement must not name an input twice.
    const progress = [...new Map(batch.progress.map((r) => [r.inputId, r])).values()];
    for (const slice of chunks(progress, ROWS_PER_STATEMENT)) {
      const values: unknown[] = [];
      for (const r of slice) values.push(r.inputId, r.attempt, r.userFailures, r.infraFailures, r.runAfterMs);
      await this.db.query(
        `INSERT INTO input_progress (input_id, attempt, user_failures, infra_failures, run_after_ms)
         VALUES ${placeholders(slice.length, ["::bigint", "::int", "::int", "::int", "::float8"])}
         ON CONFLICT (input_id) DO UPDATE SET attempt = excluded.attempt, user_failures = excluded.user_failures,
           infra_failures = excluded.infra_failures, run_after_ms = excluded.run_after_ms`,
        values,
      );
    }
    return rows.map((row) => ({ callId: row.call_id, firstIdx: row.first_idx }));
  }

  async getCall(callId: string): Promise<{ callId: string; functionId: string } | undefined> {
    const [row] = await this.db.query<{ id: string; function_id: string }>(
      "SELECT id::text, function_id FROM calls WHERE id = $1::uuid",
      [callId],
    );
    return row ? { callId: row.id, functionId: row.function_id } : undefined;
  }

  /** Final results of a call from `fromIdx` on, in index order; the first result of an input wins. */
  async results(callId: string, fromIdx = 0): Promise<FinishedInput[]> {
    const rows = await this.db.query<{ results: Uint8Array }>(
      "SELECT results FROM result_chunks WHERE call_id = $1::uuid ORDER BY id",
      [callId],
    );
    const byIdx = new Map<number, FinishedInput>();
    for (const row of rows) {
      for (const result of decodeResults(callId, row.results)) {
        if (result.idx >= fromIdx && !byIdx.has(result.idx)) byIdx.set(result.idx, result);
      }
    }
    return [...byIdx.values()].sort((a, b) => a.idx - b.idx);
  }

  /**
   * Every input of calls not finished yet, without a result, in submission order: what the engine reloads
   * when it starts. Three statements, whatever the number of calls.
   */
  async unfinishedInputs(): Promise<UnfinishedInput[]> {
    const open = "JOIN calls k ON k.id = c.call_id AND k.finished_at IS NULL";
    const [chunks, resultRows, progress] = await Promise.all([
      this.db.query<{ call_id: string; first_idx: number; first_id: string; function_id: string; args: Uint8Array }>(
        `SELECT c.call_id::text, c.first_idx, c.first_id::text, c.function_id, c.args FROM input_chunks c ${open}
         ORDER BY c.first_id`,
      ),
      this.db.query<{ call_id: string; results: Uint8Array }>(
        `SELECT c.call_id::text, c.results FROM result_chunks c ${open}`,
      ),
      this.db.query<{
        input_id: string;
        attempt: number;
        user_failures: number;
        infra_failures: number;
        run_after_ms: number;
      }>(
        `SELECT p.input_id::text, p.attempt, p.user_failures, p.infra_failures, p.run_after_ms FROM input_progress p
         JOIN input_chunks c ON p.input_id >= c.first_id AND p.input_id < c.first_id + c.count ${open}`,
      ),
    ]);
    const done = new Set<string>();
    for (const row of resultRows) {
      for (const result of decodeResults(row.call_id, row.results)) done.add(`${row.call_id}/${result.idx}`);
    }
    const counts = new Map(progress.map((row) => [row.input_id, row]));
    const out: UnfinishedInput[] = [];
    for (const chunk of chunks) {
      const args = decodeMessage(toBytes(chunk.args)) as Payload[];
      for (const [offset, payload] of args.entries()) {
        const idx = chunk.first_idx + offset;
        if (done.has(`${chunk.call_id}/${idx}`)) continue;
        const inputId = String(Number(chunk.first_id) + offset);
        const saved = counts.get(inputId);
        out.push({
          inputId,
          callId: chunk.call_id,
          functionId: chunk.function_id,
          idx,
          args: payload,
          attempt: saved?.attempt ?? 0,
          userFailures: saved?.user_failures ?? 0,
          infraFailures: saved?.infra_failures ?? 0,
          runAfterMs: Number(saved?.run_after_ms ?? 0),
        });
      }
    }
    return out;
  }

  /** Deletes calls that finished more than `ageMs` ago, with their inputs and results. */
  async deleteFinished(ageMs: number): Promise<number> {
    const rows = await this.db.query<{ id: string }>(
      `WITH old AS (DELETE FROM calls WHERE finished_at < now() - $1 * interval '1 millisecond' RETURNING id),
         chunks AS (DELETE FROM input_chunks c USING old WHERE c.call_id = old.id RETURNING c.first_id, c.count),
         progress AS (DELETE FROM input_progress p USING chunks c WHERE p.input_id >= c.first_id AND p.input_id < c.first_id + c.count),
         results AS (DELETE FROM result_chunks r USING old WHERE r.call_id = old.id)
       SELECT id::text FROM old`,
      [ageMs],
    );
    return rows.length;
  }

  // ---- image layers ----

  /** The blob holding the layer with this key, if a worker published it. */
  // ---- blob ownership ----

  /** Records that these workspaces may read these blobs (they put them, or their functions returned them). */
  async grantBlobs(workspace: string, hashes: readonly string[]): Promise<void> {
    if (hashes.length === 0) return;
    await this.db.query(
      "INSERT INTO blob_owners (workspace, hash) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
      [workspace, [...new Set(hashes)]],
    );
  }

  /** Whether a workspace may read a blob: one it never put is "not there" to it, stored or not. */
  async ownsBlob(workspace: string, hash: string): Promise<boolean> {
    const rows = await this.db.query("SELECT 1 FROM blob_owners WHERE workspace = $1 AND hash = $2", [workspace, hash]);
    return rows.length > 0;
  }

  async findLayer(key: string): Promise<string | undefined> {
    const [row] = await this.db.query<{ digest: string }>("SELECT digest FROM image_layers WHERE key = $1", [key]);
    return row?.digest;
  }

  /** Records that the layer with this key is the blob `digest`; the first one published stays. */
  async publishLayer(key: string, digest: string): Promise<void> {
    await this.db.query("INSERT INTO image_layers (key, digest) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [
      key,
      digest,
    ]);
  }

  // ---- workers and containers ----

  async upsertWorker(worker: { id: string; name: string; runtime: string; capacity: unknown }): Promise<void> {
    await this.db.query(
      `INSERT INTO workers (id, name, runtime, capacity) VALUES ($1, $2, $3, $4::text::jsonb)
       ON CONFLICT (id) DO UPDATE SET name = $2, runtime = $3, capacity = $4::text::jsonb, connected_at = now(),
         last_seen_at = now()`,
      [worker.id, worker.name, worker.runtime, JSON.stringify(worker.capacity)],
    );
  }

  /**
   * Records a container that is starting, and returns its token (`ID:SECRET`): code inside it calls
   * functions of `appId`'s workspace and environment with it until the container stops.
   */
  async addContainer(container: {
    id: string;
    workerId: string;
    functionId: string;
    version: number;
    workspace: string;
    appId: string;
    env: string;
  }): Promise<string> {
    const { secret, sha256 } = newSecret();
    await this.db.query(
      `INSERT INTO containers (id, worker_id, function_id, state, version, token_sha256, workspace, app_id, env)
       VALUES ($1, $2, $3, 'starting', $4, $5, $6, $7, $8)`,
      [
        container.id,
        container.workerId,
        container.functionId,
        container.version,
        sha256,
        container.workspace,
        container.appId,
        container.env,
      ],
    );
    return `${container.id}:${secret}`;
  }

  async setContainerState(id: string, state: "running" | "stopped", reason?: string): Promise<void> {
    await this.db.query(
      `UPDATE containers SET state = $2, stop_reason = COALESCE($3, stop_reason),
         stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END WHERE id = $1`,
      [id, state, reason ?? null],
    );
  }

  /** Records that these workers are connected. */
  async touchWorkers(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query("UPDATE workers SET last_seen_at = now() WHERE id = ANY($1::text[])", [ids]);
  }

  /** Workers heard from within `withinMs`: those a restarted server waits for before it requeues their inputs. */
  async recentWorkers(withinMs: number): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      "SELECT id FROM workers WHERE last_seen_at > now() - $1 * interval '1 millisecond'",
      [withinMs],
    );
    return rows.map((row) => row.id);
  }

  /** Marks containers stopped, e.g. because their worker restarted without them. */
  async stopContainers(ids: string[], reason: string): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query(
      "UPDATE containers SET state = 'stopped', stop_reason = $2, stopped_at = now() WHERE id = ANY($1::text[]) AND state <> 'stopped'",
      [ids, reason],
    );
  }

  async liveContainers(): Promise<LiveContainer[]> {
    const rows = await this.db.query<{
      id: string;
      worker_id: string;
      function_id: string;
      state: LiveContainer["state"];
      version: number;
    }>("SELECT id, worker_id, function_id, state, version FROM containers WHERE state <> 'stopped'");
    return rows.map((row) => ({
      id: row.id,
      workerId: row.worker_id,
      functionId: row.function_id,
      state: row.state,
      version: row.version,
    }));
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
