import type { ErrorCode, OutputStatus, Payload } from "@skiff/protocol";
import { decodeMessage, encodeMessage } from "@skiff/protocol/frame";
import { groupBy } from "@skiff/protocol/group-by";
import { toBytes } from "./bytes.js";
import type { Db } from "./db.js";

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

/** An input of an unfinished call that has no result yet: what a restarted engine queues again. */
export interface UnfinishedInput extends ProgressRecord {
  callId: string;
  functionId: string;
  idx: number;
  args: Payload;
}

/** What `CallStore.persist` writes at once. */
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

/** How many input ids `reserveInputIds` reserves at once: the step of `inputs_id_seq`. */
export const INPUT_ID_BLOCK = 1024;

// Postgres allows 65,535 parameters per statement; stay far below with room for wide rows.
const ROWS_PER_STATEMENT = 1000;

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

/**
 * Calls, their inputs and their results: written by the engine in batches on the hot path, read back
 * by callers waiting for results and by a restarted engine.
 */
export class CallStore {
  constructor(private readonly db: Db) {}

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

  /** A call by id, with the function it calls. */
  async get(callId: string): Promise<{ callId: string; functionId: string } | undefined> {
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
}
