import type { ColdStart } from "@skiff/protocol";
import type { Db } from "./db.js";
import { newSecret } from "./tokens.js";

/** A container that has not stopped: what a restarted engine checks against what its workers report. */
export interface LiveContainer {
  id: string;
  workerId: string;
  functionId: string;
  state: "starting" | "running";
  /** The app version it runs. */
  version: number;
  /** How it started, once its worker said (see ColdStart). */
  start?: ColdStart;
  /** How long after it was ready its first input finished, in ms, once one has. */
  firstInputMs?: number;
}

/**
 * The workers that joined and the containers they run. A container's row also holds its token: code in
 * it acts with it until the container stops (see TokenStore.verify).
 */
export class FleetStore {
  constructor(private readonly db: Db) {}

  /** Records a worker that connected (again), with what it can run. */
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
    /** The volumes it mounts: its token may use these, and no other. */
    volumes?: { volumeId: string; readOnly: boolean }[];
  }): Promise<string> {
    const { secret, sha256 } = newSecret();
    // Its grants first: a token is good from the containers row on.
    for (const { volumeId, readOnly } of container.volumes ?? []) {
      await this.db.query(
        `INSERT INTO container_volumes (container_id, volume_id, read_only) VALUES ($1, $2, $3)
         ON CONFLICT (container_id, volume_id) DO UPDATE SET read_only = container_volumes.read_only AND $3`,
        [container.id, volumeId, readOnly],
      );
    }
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

  /** Records that a container runs, or stopped (and why). */
  async setContainerState(id: string, state: "running" | "stopped", reason?: string): Promise<void> {
    await this.db.query(
      `UPDATE containers SET state = $2, stop_reason = COALESCE($3, stop_reason),
         stopped_at = CASE WHEN $2 = 'stopped' THEN now() ELSE stopped_at END WHERE id = $1`,
      [id, state, reason ?? null],
    );
  }

  /** Records that a container runs, and how its cold start went (absent from a worker that does not say). */
  async containerStarted(id: string, start: ColdStart | undefined): Promise<void> {
    await this.db.query(
      "UPDATE containers SET state = 'running', start_kind = $2, start_phases = $3::text::jsonb WHERE id = $1",
      [id, start?.kind ?? null, start ? JSON.stringify(start.phases) : null],
    );
  }

  /** Records how long after it was ready a container's first input finished; later ones change nothing. */
  async firstInputFinished(id: string, ms: number): Promise<void> {
    await this.db.query("UPDATE containers SET first_input_ms = $2 WHERE id = $1 AND first_input_ms IS NULL", [id, ms]);
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

  /** Every container not stopped, on any worker. */
  async liveContainers(): Promise<LiveContainer[]> {
    const rows = await this.db.query<{
      id: string;
      worker_id: string;
      function_id: string;
      state: LiveContainer["state"];
      version: number;
      start_kind: ColdStart["kind"] | null;
      start_phases: ColdStart["phases"] | string | null;
      first_input_ms: number | null;
    }>(
      `SELECT id, worker_id, function_id, state, version, start_kind, start_phases, first_input_ms
       FROM containers WHERE state <> 'stopped'`,
    );
    return rows.map((row) => {
      const phases = typeof row.start_phases === "string" ? JSON.parse(row.start_phases) : row.start_phases;
      return {
        id: row.id,
        workerId: row.worker_id,
        functionId: row.function_id,
        state: row.state,
        version: row.version,
        ...(row.start_kind && phases ? { start: { kind: row.start_kind, phases } } : {}),
        ...(row.first_input_ms === null ? {} : { firstInputMs: row.first_input_ms }),
      };
    });
  }
}
