import type { Db } from "./db.js";

/** Migrations in order; each runs once, inside a transaction. Never edit one that has shipped. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE apps (
    id text PRIMARY KEY,
    name text NOT NULL,
    env text NOT NULL,
    mode text NOT NULL,
    state text NOT NULL,
    bundle_hash text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    client_seen_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX apps_live ON apps (state) WHERE state = 'running';
  CREATE TABLE functions (
    id text PRIMARY KEY,
    app_id text NOT NULL REFERENCES apps (id),
    name text NOT NULL,
    spec jsonb NOT NULL,
    UNIQUE (app_id, name)
  );
  CREATE TABLE calls (
    id uuid PRIMARY KEY,
    function_id text NOT NULL REFERENCES functions (id),
    total int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE inputs (
    id bigserial PRIMARY KEY,
    call_id uuid NOT NULL,
    idx int NOT NULL,
    function_id text NOT NULL,
    args bytea,
    args_blob text,
    status text NOT NULL DEFAULT 'pending',
    attempt int NOT NULL DEFAULT 0,
    user_failures int NOT NULL DEFAULT 0,
    infra_failures int NOT NULL DEFAULT 0,
    run_after timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    result_status text,
    result_code text,
    result bytea,
    result_blob text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (call_id, idx)
  );
  CREATE INDEX inputs_pending ON inputs (function_id, id) WHERE status = 'pending';
  CREATE INDEX inputs_running ON inputs (lease_expires_at) WHERE status = 'running';
  CREATE INDEX inputs_finished ON inputs (finished_at) WHERE status = 'done';
  CREATE TABLE workers (
    id text PRIMARY KEY,
    name text NOT NULL,
    runtime text NOT NULL,
    capacity jsonb NOT NULL,
    connected_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE containers (
    id text PRIMARY KEY,
    worker_id text NOT NULL,
    function_id text NOT NULL,
    state text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    stopped_at timestamptz,
    stop_reason text
  );
  CREATE INDEX containers_live ON containers (function_id) WHERE state <> 'stopped';
  `,
  // The engine queues and leases inputs in memory; the store keeps what a restart needs, in chunks: a
  // call's inputs as submitted, its results as recorded, and the retry counts of unfinished inputs.
  // Inputs of the first schema are not carried over (there was no release with it).
  `
  DROP TABLE inputs;
  ALTER TABLE calls ADD COLUMN finished_at timestamptz;
  CREATE INDEX calls_unfinished ON calls (id) WHERE finished_at IS NULL;
  CREATE INDEX calls_finished ON calls (finished_at) WHERE finished_at IS NOT NULL;
  CREATE SEQUENCE input_ids INCREMENT BY 1024;
  CREATE TABLE input_chunks (
    call_id uuid NOT NULL,
    first_idx int NOT NULL,
    first_id bigint NOT NULL,
    count int NOT NULL,
    function_id text NOT NULL,
    args bytea NOT NULL,
    PRIMARY KEY (call_id, first_idx)
  );
  CREATE TABLE result_chunks (
    id bigserial PRIMARY KEY,
    call_id uuid NOT NULL,
    count int NOT NULL,
    results bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE INDEX result_chunks_call ON result_chunks (call_id);
  CREATE TABLE input_progress (
    input_id bigint PRIMARY KEY,
    attempt int NOT NULL,
    user_failures int NOT NULL,
    infra_failures int NOT NULL,
    run_after_ms float8 NOT NULL
  );
  `,
  // Image layers a worker built, by key, so other workers fetch them from the blob store instead.
  `
  CREATE TABLE image_layers (
    key text PRIMARY KEY,
    digest text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  `,
  // Deployed apps keep one row per (env, name) across deploys: each deploy is a version, and a function
  // keeps its id across versions (callers holding it reach the newest code). \`run --detach\` apps were
  // marked deployed before; they are detached runs.
  `
  UPDATE apps SET mode = 'detached' WHERE mode = 'deployed';
  ALTER TABLE apps ADD COLUMN version int NOT NULL DEFAULT 1;
  CREATE UNIQUE INDEX apps_deployed_name ON apps (env, name) WHERE mode = 'deployed' AND state = 'running';
  CREATE TABLE app_versions (
    app_id text NOT NULL REFERENCES apps (id),
    version int NOT NULL,
    bundle_hash text NOT NULL,
    manifest jsonb NOT NULL,
    note text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, version)
  );
  ALTER TABLE functions ADD COLUMN version int NOT NULL DEFAULT 1;
  ALTER TABLE containers ADD COLUMN version int NOT NULL DEFAULT 1;
  -- A class's calls name a pool (the class's id and its parameter values), not a functions row.
  ALTER TABLE calls DROP CONSTRAINT calls_function_id_fkey;
  -- Specs went in as JSON text on PostgreSQL (a jsonb string); make them objects so SQL can read them.
  UPDATE functions SET spec = (spec #>> '{}')::jsonb WHERE jsonb_typeof(spec) = 'string';
  `,
  // Schedules of deployed functions, one row per function. Times are ms since the epoch from the
  // scheduler's clock; each tick is claimed by a compare-and-set on last_tick_ms, so that several
  // replicas fire it once.
  `
  CREATE TABLE schedules (
    function_id text PRIMARY KEY,
    app_id text NOT NULL,
    spec jsonb NOT NULL,
    anchor_ms float8 NOT NULL,
    last_tick_ms float8,
    last_outcome text,
    last_error text,
    last_run_ms float8,
    last_call_id text,
    skipped_ticks int NOT NULL DEFAULT 0
  );
  CREATE INDEX schedules_app ON schedules (app_id);
  `,
  // Environments and the secrets in them. Workspaces come later: until then everything is in 'ws-local'.
  // Environments apps already run in are created, so that they stay usable. A secret's values are one
  // AES-256-GCM sealed JSON object, bound to its (workspace, env, name); key_id names the master key that
  // sealed it. Its keys are stored in the clear so that listing never opens a value.
  `
  CREATE TABLE environments (
    workspace text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, name)
  );
  INSERT INTO environments (workspace, name) SELECT 'ws-local', 'main' UNION SELECT 'ws-local', env FROM apps;
  CREATE TABLE secrets (
    workspace text NOT NULL,
    env text NOT NULL,
    name text NOT NULL,
    keys text[] NOT NULL,
    sealed bytea NOT NULL,
    key_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, env, name),
    FOREIGN KEY (workspace, env) REFERENCES environments (workspace, name)
  );
  `,
  // Values of an app version's Secret.fromObject / fromDotenv secrets: one sealed JSON object per version,
  // bound to the app and version (never in the manifest, which is stored in the clear).
  `
  ALTER TABLE app_versions ADD COLUMN local_secrets bytea;
  `,
  // Workspaces and the tokens that act in them. Everything so far lived in 'ws-local', which becomes a
  // real workspace named "local". A token's secret is stored as its SHA-256 (it is 256 random bits, so a
  // slow hash would add nothing). Worker tokens belong to no workspace: they let a worker agent join.
  // Apps get their workspace, and a deployed app's name is unique per (workspace, env). A blob is stored
  // once however many workspaces put it, and read only by those that did (or that a function's output
  // put it for). Local secret values remember the master key that sealed them, for rotation.
  `
  CREATE TABLE workspaces (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  INSERT INTO workspaces (id, name) VALUES ('ws-local', 'local');
  ALTER TABLE environments ADD FOREIGN KEY (workspace) REFERENCES workspaces (id);
  CREATE TABLE tokens (
    id text PRIMARY KEY,
    workspace text REFERENCES workspaces (id),
    kind text NOT NULL,
    name text NOT NULL,
    admin boolean NOT NULL DEFAULT false,
    secret_sha256 text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at timestamptz,
    CHECK ((kind = 'worker') = (workspace IS NULL))
  );
  CREATE INDEX tokens_workspace ON tokens (workspace);
  ALTER TABLE apps ADD COLUMN workspace text NOT NULL DEFAULT 'ws-local' REFERENCES workspaces (id);
  ALTER TABLE apps ALTER COLUMN workspace DROP DEFAULT;
  DROP INDEX apps_deployed_name;
  CREATE UNIQUE INDEX apps_deployed_name ON apps (workspace, env, name) WHERE mode = 'deployed' AND state = 'running';
  CREATE TABLE blob_owners (
    workspace text NOT NULL REFERENCES workspaces (id),
    hash text NOT NULL,
    PRIMARY KEY (workspace, hash)
  );
  INSERT INTO blob_owners (workspace, hash) SELECT DISTINCT 'ws-local', bundle_hash FROM app_versions;
  ALTER TABLE app_versions ADD COLUMN local_secrets_key_id text;
  `,
  // A container's token lets the code inside it call functions of its workspace and environment; it is
  // good while the container lives. Like API tokens, only the secret's SHA-256 is kept. Containers from
  // before have none, and never get one.
  `
  ALTER TABLE containers ADD COLUMN token_sha256 text;
  ALTER TABLE containers ADD COLUMN workspace text;
  ALTER TABLE containers ADD COLUMN app_id text;
  ALTER TABLE containers ADD COLUMN env text;
  `,
  // Volumes of an environment, versioned. A file row is written only at the version that changed its path
  // (a tombstone when deleted); version V of a path is its newest row at or below V. Directories are rows,
  // so that one directory lists from its own rows: the key is (volume, dir, name, version). Names compare
  // bytewise (COLLATE "C"), so that a subtree "a/…" is the range of dirs from "a/" up to "a0". Chunks are
  // the sha256 digests of the file's 8 MiB pieces, concatenated. As for apps, the environment is checked by
  // the store (a share lock on it while a volume is created; deleting it refuses while volumes remain).
  `
  CREATE TABLE volumes (
    id text PRIMARY KEY,
    workspace text NOT NULL REFERENCES workspaces (id),
    env text NOT NULL,
    name text NOT NULL,
    version int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workspace, env, name)
  );
  CREATE TABLE volume_versions (
    volume_id text NOT NULL REFERENCES volumes (id),
    version int NOT NULL,
    author text NOT NULL,
    note text NOT NULL,
    changes int NOT NULL,
    base_version int,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (volume_id, version)
  );
  CREATE TABLE volume_files (
    volume_id text NOT NULL REFERENCES volumes (id),
    dir text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    version int NOT NULL,
    deleted boolean NOT NULL,
    type text NOT NULL,
    size float8 NOT NULL,
    mode int NOT NULL,
    mtime_ms float8 NOT NULL,
    chunks text NOT NULL
  );
  CREATE UNIQUE INDEX volume_files_by_path ON volume_files (volume_id, dir, name, version DESC);
  CREATE INDEX volume_files_by_version ON volume_files (volume_id, version);
  `,
  // The volumes each container mounts: its token reaches those only (read-only ones for reading), and a
  // volume a running container mounts is deleted only when forced.
  `
  CREATE TABLE container_volumes (
    container_id text NOT NULL,
    volume_id text NOT NULL,
    read_only boolean NOT NULL,
    PRIMARY KEY (container_id, volume_id)
  );
  CREATE INDEX container_volumes_by_volume ON container_volumes (volume_id);
  `,
  // The bytes of each volume's latest version (its live files), kept by every commit: a workspace's volumes
  // are held to a quota, checked in the commit's transaction.
  `
  ALTER TABLE volumes ADD COLUMN bytes float8 NOT NULL DEFAULT 0;
  UPDATE volumes v SET bytes = (
    SELECT COALESCE(SUM(f.size), 0) FROM (
      SELECT DISTINCT ON (dir, name) deleted, type, size FROM volume_files
      WHERE volume_id = v.id ORDER BY dir, name, version DESC
    ) f WHERE NOT f.deleted AND f.type = 'file'
  );
  `,
  // How each container started (booted or restored), how long each phase of its cold start took (ms by phase
  // name), and how long after it was ready its first input finished: `skiff container list` shows them.
  `
  ALTER TABLE containers ADD COLUMN start_kind text;
  ALTER TABLE containers ADD COLUMN start_phases jsonb;
  ALTER TABLE containers ADD COLUMN first_input_ms int;
  `,
];

/** Brings the schema up to date. Safe to call from several server replicas at once. */
export async function migrate(db: Db): Promise<void> {
  await db.transaction(async (tx) => {
    // One migrator at a time across replicas; released at commit.
    if (tx.dialect === "postgres") await tx.query("SELECT pg_advisory_xact_lock(7262001)");
    await tx.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY)");
    const done = await tx.query<{ version: number }>("SELECT version FROM schema_migrations");
    const applied = new Set(done.map((row) => row.version));
    for (const [index, sql] of MIGRATIONS.entries()) {
      if (applied.has(index + 1)) continue;
      await tx.exec(sql);
      await tx.query("INSERT INTO schema_migrations (version) VALUES ($1)", [index + 1]);
    }
  });
}
