import { randomUUID } from "node:crypto";
import type { ErrorCode, FunctionSpec, OutputStatus, Payload, RetryPolicy } from "@skiff/protocol";
import type { Db } from "./db.js";
import { migrate } from "./schema.js";

export interface AppRow {
  id: string;
  name: string;
  env: string;
  mode: "ephemeral" | "deployed";
  state: "running" | "stopped";
  bundleHash: string;
  createdAt: Date;
}

export interface FunctionRow {
  id: string;
  appId: string;
  name: string;
  spec: FunctionSpec;
}

export interface ClaimedRow {
  inputId: string;
  attempt: number;
  callId: string;
  idx: number;
  args: Payload;
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

export interface NewInput {
  idx: number;
  args: Payload;
  /** Lease it at once to this waiting container. */
  owner?: string | undefined;
}

export interface OutputRecord {
  inputId: string;
  attempt: number;
  status: OutputStatus;
  code?: ErrorCode | undefined;
  retryable: boolean;
  data: Payload;
}

export interface InputRef {
  inputId: string;
  attempt: number;
}

export interface Backlog {
  functionId: string;
  /** Inputs ready to run now. */
  pending: number;
  running: number;
  /** Inputs waiting for a retry backoff. */
  delayed: number;
}

export interface LiveContainer {
  id: string;
  workerId: string;
  functionId: string;
  state: "starting" | "running";
}

// Postgres allows 65,535 parameters per statement; stay far below with room for wide rows.
const ROWS_PER_STATEMENT = 1000;

function payloadColumns(payload: Payload): [Uint8Array | null, string | null] {
  return "inline" in payload ? [payload.inline, null] : [null, payload.blob];
}

function toPayload(bytes: Uint8Array | null, blob: string | null): Payload {
  if (blob) return { blob };
  // postgres.js hands back Buffers; normalize so callers see one type.
  return { inline: bytes ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new Uint8Array() };
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

interface FinishedRow {
  input_id: string;
  call_id: string;
  idx: number;
  status: string;
  result_status: OutputStatus | null;
  result_code: ErrorCode | null;
  result: Uint8Array | null;
  result_blob: string | null;
}

function finished(rows: FinishedRow[]): FinishedInput[] {
  return rows
    .filter((row) => row.status === "done")
    .map((row) => ({
      inputId: row.input_id,
      callId: row.call_id,
      idx: row.idx,
      status: row.result_status ?? "failure",
      code: row.result_code ?? undefined,
      data: toPayload(row.result, row.result_blob),
    }));
}

const FINISHED_COLUMNS =
  "id::text AS input_id, call_id::text, idx, status, result_status, result_code, result, result_blob";
// For statements joining a VALUES list that has its own result columns.
const FINISHED_COLUMNS_OF_I =
  "i.id::text AS input_id, i.call_id::text, i.idx, i.status, i.result_status, i.result_code, i.result, i.result_blob";

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

  async createApp(app: {
    name: string;
    env: string;
    mode: AppRow["mode"];
    bundleHash: string;
    functions: FunctionSpec[];
  }): Promise<{ app: AppRow; functions: FunctionRow[] }> {
    return this.db.transaction(async (tx) => {
      const id = `ap-${randomUUID()}`;
      await tx.query(
        "INSERT INTO apps (id, name, env, mode, state, bundle_hash) VALUES ($1, $2, $3, $4, 'running', $5)",
        [id, app.name, app.env, app.mode, app.bundleHash],
      );
      const functions: FunctionRow[] = [];
      for (const spec of app.functions) {
        const fn = { id: `fu-${randomUUID()}`, appId: id, name: spec.name, spec };
        await tx.query("INSERT INTO functions (id, app_id, name, spec) VALUES ($1, $2, $3, $4)", [
          fn.id,
          id,
          spec.name,
          JSON.stringify(spec),
        ]);
        functions.push(fn);
      }
      const [row] = await tx.query<AppDbRow>(`SELECT ${APP_COLUMNS} FROM apps WHERE id = $1`, [id]);
      return { app: toApp(row!), functions };
    });
  }

  async getApp(appId: string): Promise<AppRow | undefined> {
    const [row] = await this.db.query<AppDbRow>(`SELECT ${APP_COLUMNS} FROM apps WHERE id = $1`, [appId]);
    return row ? toApp(row) : undefined;
  }

  async listApps(env: string): Promise<AppRow[]> {
    const rows = await this.db.query<AppDbRow>(
      `SELECT ${APP_COLUMNS} FROM apps WHERE env = $1 ORDER BY created_at DESC LIMIT 200`,
      [env],
    );
    return rows.map(toApp);
  }

  /** Marks an app stopped and fails its unfinished inputs; returns those that were running, to kill. */
  async stopApp(appId: string): Promise<{ finished: FinishedInput[]; running: (InputRef & { owner: string })[] }> {
    await this.db.query("UPDATE apps SET state = 'stopped', stopped_at = now() WHERE id = $1 AND state = 'running'", [
      appId,
    ]);
    return this.failUnfinished(
      "function_id IN (SELECT id FROM functions WHERE app_id = $1)",
      [appId],
      "CANCELLED",
      "the app was stopped",
    );
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
      `SELECT f.id AS fid, f.name AS fname, f.spec, ${APP_COLUMNS_A} FROM functions f JOIN apps a ON a.id = f.app_id WHERE f.id = $1`,
      [functionId],
    );
    if (!row) return undefined;
    return { id: row.fid, appId: row.id, name: row.fname, spec: parseSpec(row.spec), app: toApp(row) };
  }

  /** The running app of this name in this environment, newest first, with its functions. */
  async findFunction(env: string, appName: string, name: string): Promise<FunctionRow | undefined> {
    const [row] = await this.db.query<FunctionDbRow & { fid: string; app_id: string }>(
      `SELECT f.id AS fid, f.app_id, f.name AS fname, f.spec FROM functions f JOIN apps a ON a.id = f.app_id
       WHERE a.env = $1 AND a.name = $2 AND f.name = $3 AND a.state = 'running' ORDER BY a.created_at DESC LIMIT 1`,
      [env, appName, name],
    );
    return row ? { id: row.fid, appId: row.app_id, name: row.fname, spec: parseSpec(row.spec) } : undefined;
  }

  // ---- calls and inputs ----

  /**
   * Writes a call's inputs; a resend of the same (callId, idx) is ignored. An input with an `owner` is
   * written already leased to that container (attempt 1), saving a claim when a container is waiting.
   * One statement per 1,000 inputs and no transaction: a partial write is completed by the resend.
   */
  async submit(call: {
    callId: string;
    functionId: string;
    total: number;
    inputs: NewInput[];
    leaseMs?: number;
  }): Promise<{ inserted: number; leased: (InputRef & { idx: number; owner: string })[] }> {
    let inserted = 0;
    const leased: (InputRef & { idx: number; owner: string })[] = [];
    for (const batch of chunks(call.inputs, ROWS_PER_STATEMENT)) {
      const params: unknown[] = [call.callId, call.functionId, call.total, call.leaseMs ?? 0];
      for (const input of batch) params.push(input.idx, ...payloadColumns(input.args), input.owner ?? null);
      const values = placeholders(batch.length, ["::int", "::bytea", "::text", "::text"], { offset: 4 });
      const rows = await this.db.query<{ id: string; idx: number; attempt: number; lease_owner: string | null }>(
        `WITH c AS (INSERT INTO calls (id, function_id, total) VALUES ($1::uuid, $2, $3) ON CONFLICT (id) DO NOTHING)
         INSERT INTO inputs (call_id, function_id, idx, args, args_blob, status, attempt, lease_owner, lease_expires_at)
         SELECT $1::uuid, $2, v.idx, v.args, v.args_blob,
           CASE WHEN v.owner IS NULL THEN 'pending' ELSE 'running' END,
           CASE WHEN v.owner IS NULL THEN 0 ELSE 1 END,
           v.owner,
           CASE WHEN v.owner IS NULL THEN NULL ELSE now() + $4 * interval '1 millisecond' END
         FROM (VALUES ${values}) AS v(idx, args, args_blob, owner)
         ON CONFLICT (call_id, idx) DO NOTHING RETURNING id::text, idx, attempt, lease_owner`,
        params,
      );
      inserted += rows.length;
      for (const row of rows) {
        if (row.lease_owner)
          leased.push({ inputId: row.id, attempt: row.attempt, idx: row.idx, owner: row.lease_owner });
      }
    }
    return { inserted, leased };
  }

  async getCall(callId: string): Promise<{ callId: string; functionId: string; total: number } | undefined> {
    const [row] = await this.db.query<{ id: string; function_id: string; total: number }>(
      "SELECT id::text, function_id, total FROM calls WHERE id = $1::uuid",
      [callId],
    );
    return row ? { callId: row.id, functionId: row.function_id, total: row.total } : undefined;
  }

  /** Leases up to `max` ready inputs of a function to a container, in submission order. */
  async claim(claim: { functionId: string; owner: string; max: number; leaseMs: number }): Promise<ClaimedRow[]> {
    const rows = await this.db.query<{
      id: string;
      attempt: number;
      call_id: string;
      idx: number;
      args: Uint8Array | null;
      args_blob: string | null;
    }>(
      `UPDATE inputs SET status = 'running', attempt = attempt + 1, lease_owner = $2,
         lease_expires_at = now() + $3 * interval '1 millisecond'
       WHERE id IN (SELECT id FROM inputs WHERE function_id = $1 AND status = 'pending' AND run_after <= now()
                    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING id::text, attempt, call_id::text, idx, args, args_blob`,
      [claim.functionId, claim.owner, claim.leaseMs, claim.max],
    );
    rows.sort((a, b) => Number(a.id) - Number(b.id));
    return rows.map((row) => ({
      inputId: row.id,
      attempt: row.attempt,
      callId: row.call_id,
      idx: row.idx,
      args: toPayload(row.args, row.args_blob),
    }));
  }

  /** Extends the leases of inputs still running under these attempts. */
  async heartbeat(inputs: InputRef[], leaseMs: number): Promise<void> {
    await this.forRunningAttempts(
      inputs,
      [leaseMs],
      "SET lease_expires_at = now() + $1 * interval '1 millisecond'",
      "",
    );
  }

  /**
   * Records outputs. A success finishes its input whatever the attempt (the first success wins); a failure
   * counts only for the attempt that holds the input, and is retried with backoff while the policy allows.
   */
  async recordOutputs(
    outputs: OutputRecord[],
    policyOf: (functionId: string) => RetryPolicy | Promise<RetryPolicy>,
  ): Promise<FinishedInput[]> {
    const done: FinishedInput[] = [];
    const successes = outputs.filter((o) => o.status === "success");
    for (const batch of chunks(successes, ROWS_PER_STATEMENT)) {
      const params: unknown[] = [];
      for (const output of batch) params.push(output.inputId, ...payloadColumns(output.data));
      const rows = await this.db.query<FinishedRow>(
        `UPDATE inputs i SET status = 'done', result_status = 'success', result_code = NULL, result = v.result,
           result_blob = v.result_blob, finished_at = now(), lease_owner = NULL
         FROM (VALUES ${placeholders(batch.length, ["::bigint", "::bytea", "::text"])}) AS v(id, result, result_blob)
         WHERE i.id = v.id AND i.status <> 'done'
         RETURNING ${FINISHED_COLUMNS_OF_I}`,
        params,
      );
      done.push(...finished(rows));
    }
    for (const output of outputs.filter((o) => o.status === "failure")) {
      const [owner] = await this.db.query<{ function_id: string }>("SELECT function_id FROM inputs WHERE id = $1", [
        output.inputId,
      ]);
      if (!owner) continue;
      const policy = await policyOf(owner.function_id);
      const [bytes, blob] = payloadColumns(output.data);
      const rows = await this.db.query<FinishedRow>(
        `UPDATE inputs SET user_failures = user_failures + 1,
           status = CASE WHEN $3 AND user_failures < $4 THEN 'pending' ELSE 'done' END,
           run_after = now() + LEAST($5 * power($6, user_failures), $7) * interval '1 millisecond',
           lease_owner = NULL,
           result_status = 'failure', result_code = $8, result = $9, result_blob = $10,
           finished_at = CASE WHEN $3 AND user_failures < $4 THEN NULL ELSE now() END
         WHERE id = $1 AND attempt = $2 AND status = 'running'
         RETURNING ${FINISHED_COLUMNS}`,
        [
          output.inputId,
          output.attempt,
          output.retryable,
          policy.maxRetries,
          policy.initialDelayMs,
          policy.backoffCoefficient,
          policy.maxDelayMs,
          output.code ?? "USER_ERROR",
          bytes,
          blob,
        ],
      );
      done.push(...finished(rows));
    }
    return done;
  }

  /**
   * Requeues inputs whose attempt was lost to the platform (worker died, lease expired), outside the
   * user's retry budget; after `maxInfra` such losses the input fails with `code`.
   */
  async requeueLost(
    where: { expiredBefore: "now" } | { inputs: InputRef[] } | { owners: string[] },
    failure: { maxInfra: number; code: ErrorCode; data: Uint8Array },
  ): Promise<{ requeued: number; finished: FinishedInput[] }> {
    const set = `infra_failures = infra_failures + 1, lease_owner = NULL,
      status = CASE WHEN infra_failures + 1 > $1 THEN 'done' ELSE 'pending' END,
      result_status = CASE WHEN infra_failures + 1 > $1 THEN 'failure' ELSE result_status END,
      result_code = CASE WHEN infra_failures + 1 > $1 THEN $2 ELSE result_code END,
      result = CASE WHEN infra_failures + 1 > $1 THEN $3::bytea ELSE result END,
      finished_at = CASE WHEN infra_failures + 1 > $1 THEN now() ELSE NULL END`;
    const base = [failure.maxInfra, failure.code, failure.data];
    let rows: FinishedRow[] = [];
    if ("expiredBefore" in where) {
      rows = await this.db.query<FinishedRow>(
        `UPDATE inputs SET ${set} WHERE status = 'running' AND lease_expires_at < now() RETURNING ${FINISHED_COLUMNS}`,
        base,
      );
    } else if ("owners" in where) {
      if (where.owners.length === 0) return { requeued: 0, finished: [] };
      rows = await this.db.query<FinishedRow>(
        `UPDATE inputs SET ${set} WHERE status = 'running' AND lease_owner = ANY($4::text[]) RETURNING ${FINISHED_COLUMNS}`,
        [...base, where.owners],
      );
    } else {
      rows = await this.forRunningAttempts<FinishedRow>(where.inputs, base, `SET ${set}`, FINISHED_COLUMNS_OF_I);
    }
    const done = finished(rows);
    return { requeued: rows.length - done.length, finished: done };
  }

  /** Final results of a call from `fromIdx` on, in index order. */
  async results(callId: string, fromIdx = 0): Promise<FinishedInput[]> {
    const rows = await this.db.query<FinishedRow>(
      `SELECT ${FINISHED_COLUMNS} FROM inputs WHERE call_id = $1::uuid AND idx >= $2 AND status = 'done' ORDER BY idx`,
      [callId, fromIdx],
    );
    return finished(rows);
  }

  /** Fails a function's inputs that wait to run (not those running), e.g. because its containers cannot start. */
  async failPending(functionId: string, code: ErrorCode, data: Uint8Array): Promise<{ finished: FinishedInput[] }> {
    const rows = await this.db.query<FinishedRow>(
      `UPDATE inputs SET status = 'done', result_status = 'failure', result_code = $2, result = $3::bytea, result_blob = NULL,
         finished_at = now(), lease_owner = NULL
       WHERE function_id = $1 AND status = 'pending' RETURNING ${FINISHED_COLUMNS}`,
      [functionId, code, data],
    );
    return { finished: finished(rows) };
  }

  /** Cancels a call's unfinished inputs; returns the finished records and the attempts to kill. */
  async cancelCall(callId: string): Promise<{ finished: FinishedInput[]; running: (InputRef & { owner: string })[] }> {
    return this.failUnfinished("call_id = $1::uuid", [callId], "CANCELLED", "the call was cancelled");
  }

  private async failUnfinished(
    where: string,
    params: unknown[],
    code: ErrorCode,
    message: string,
  ): Promise<{ finished: FinishedInput[]; running: (InputRef & { owner: string })[] }> {
    const n = params.length;
    const rows = await this.db.query<FinishedRow & { prev: string; attempt: number; owner: string | null }>(
      `WITH c AS (SELECT id, status AS prev, lease_owner AS owner FROM inputs WHERE ${where} AND status <> 'done' FOR UPDATE)
       UPDATE inputs i SET status = 'done', result_status = 'failure', result_code = $${n + 1}, result = $${n + 2}::bytea,
         result_blob = NULL, finished_at = now(), lease_owner = NULL
       FROM c WHERE i.id = c.id
       RETURNING c.prev, c.owner, i.attempt, ${FINISHED_COLUMNS_OF_I}`,
      [...params, code, new TextEncoder().encode(message)],
    );
    return {
      finished: finished(rows),
      running: rows
        .filter((row) => row.prev === "running" && row.owner)
        .map((row) => ({ inputId: row.input_id, attempt: row.attempt, owner: row.owner! })),
    };
  }

  /** Ready, running and delayed inputs per function of running apps. */
  async backlog(): Promise<Backlog[]> {
    const rows = await this.db.query<{ function_id: string; pending: string; running: string; delayed: string }>(
      `SELECT function_id,
         count(*) FILTER (WHERE status = 'pending' AND run_after <= now()) AS pending,
         count(*) FILTER (WHERE status = 'running') AS running,
         count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS delayed
       FROM inputs WHERE status <> 'done' GROUP BY function_id`,
    );
    return rows.map((row) => ({
      functionId: row.function_id,
      pending: Number(row.pending),
      running: Number(row.running),
      delayed: Number(row.delayed),
    }));
  }

  /** Deletes finished inputs and calls older than `ageMs`. */
  async deleteFinished(ageMs: number): Promise<number> {
    const rows = await this.db.query(
      "DELETE FROM inputs WHERE status = 'done' AND finished_at < now() - $1 * interval '1 millisecond' RETURNING id",
      [ageMs],
    );
    await this.db.query(
      "DELETE FROM calls c WHERE created_at < now() - $1 * interval '1 millisecond' AND NOT EXISTS (SELECT 1 FROM inputs i WHERE i.call_id = c.id)",
      [ageMs],
    );
    return rows.length;
  }

  // ---- workers and containers ----

  async upsertWorker(worker: { id: string; name: string; runtime: string; capacity: unknown }): Promise<void> {
    await this.db.query(
      `INSERT INTO workers (id, name, runtime, capacity) VALUES ($1, $2, $3, $4)
       ON CONFLICT (id) DO UPDATE SET name = $2, runtime = $3, capacity = $4, connected_at = now(), last_seen_at = now()`,
      [worker.id, worker.name, worker.runtime, JSON.stringify(worker.capacity)],
    );
  }

  async addContainer(container: { id: string; workerId: string; functionId: string }): Promise<void> {
    await this.db.query("INSERT INTO containers (id, worker_id, function_id, state) VALUES ($1, $2, $3, 'starting')", [
      container.id,
      container.workerId,
      container.functionId,
    ]);
  }

  async setContainerState(id: string, state: "running" | "stopped", reason?: string): Promise<void> {
    await this.db.query(
      `UPDATE containers SET state = $2, stop_reason = COALESCE($3, stop_reason),
         stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END WHERE id = $1`,
      [id, state, reason ?? null],
    );
  }

  /** Puts leased inputs that were never run back in the queue, without counting a failure. */
  async returnInputs(inputs: InputRef[]): Promise<number> {
    const rows = await this.forRunningAttempts(
      inputs,
      [],
      "SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL",
      "i.id",
    );
    return rows.length;
  }

  /**
   * Runs `UPDATE inputs i <set>` on each of these attempts that still holds its input, in batches; `leading`
   * parameters come first ($1…), and `returning` (empty for none) lists what to return.
   */
  private async forRunningAttempts<T>(
    refs: InputRef[],
    leading: unknown[],
    set: string,
    returning: string,
  ): Promise<T[]> {
    const out: T[] = [];
    for (const batch of chunks(refs, ROWS_PER_STATEMENT)) {
      const params: unknown[] = [...leading];
      for (const ref of batch) params.push(ref.inputId, ref.attempt);
      const values = placeholders(batch.length, ["::bigint", "::int"], { offset: leading.length });
      const rows = await this.db.query<T>(
        `UPDATE inputs i ${set}
         FROM (VALUES ${values}) AS v(id, attempt) WHERE i.id = v.id AND i.attempt = v.attempt AND i.status = 'running'
         ${returning ? `RETURNING ${returning}` : ""}`,
        params,
      );
      out.push(...rows);
    }
    return out;
  }

  /** The attempts currently leased to these containers. */
  async leasedTo(owners: string[]): Promise<InputRef[]> {
    if (owners.length === 0) return [];
    const rows = await this.db.query<{ id: string; attempt: number }>(
      "SELECT id::text, attempt FROM inputs WHERE status = 'running' AND lease_owner = ANY($1::text[])",
      [owners],
    );
    return rows.map((row) => ({ inputId: row.id, attempt: row.attempt }));
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
    }>("SELECT id, worker_id, function_id, state FROM containers WHERE state <> 'stopped'");
    return rows.map((row) => ({ id: row.id, workerId: row.worker_id, functionId: row.function_id, state: row.state }));
  }
}

const APP_COLUMNS = "id, name, env, mode, state, bundle_hash, created_at";
const APP_COLUMNS_A = "a.id, a.name, a.env, a.mode, a.state, a.bundle_hash, a.created_at";

interface AppDbRow {
  id: string;
  name: string;
  env: string;
  mode: AppRow["mode"];
  state: AppRow["state"];
  bundle_hash: string;
  created_at: Date | string;
}

interface FunctionDbRow {
  fname: string;
  spec: unknown;
}

function toApp(row: AppDbRow): AppRow {
  return {
    id: row.id,
    name: row.name,
    env: row.env,
    mode: row.mode,
    state: row.state,
    bundleHash: row.bundle_hash,
    createdAt: new Date(row.created_at),
  };
}

function parseSpec(spec: unknown): FunctionSpec {
  return (typeof spec === "string" ? JSON.parse(spec) : spec) as FunctionSpec;
}
