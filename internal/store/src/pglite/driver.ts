import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { Db } from "../db.js";
import { isAlive, lockDataDir } from "./data-dir-lock.js";

const BYTEA = 17;

type Queryable = Pick<PGlite, "query" | "exec"> | Transaction;

class PgliteDb implements Db {
  readonly dialect = "pglite" as const;
  constructor(
    private readonly conn: Queryable,
    private readonly root: PGlite | undefined,
    private readonly unlock: () => void = () => {},
  ) {}

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<T[]> {
    const result = await this.conn.query<T>(sql, params as unknown[]);
    return result.rows;
  }

  async exec(sql: string): Promise<void> {
    await this.conn.exec(sql);
  }

  async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (!this.root) return fn(this);
    return this.root.transaction((tx) => fn(new PgliteDb(tx, undefined)));
  }

  async close(): Promise<void> {
    try {
      await this.root?.close();
    } finally {
      this.unlock();
    }
  }
}

/** What of PGlite's Emscripten module this driver reaches into: its Node file system and its errors. */
interface EmscriptenModule {
  NODEFS?: {
    stream_ops: Record<string, unknown>;
    realPath(node: unknown): string;
  };
  FS: { ErrnoError: new (errno: number) => Error };
}

const EIO = 29; // Emscripten's number for EIO

/**
 * Makes PGlite's `fsync` reach the disk. PGlite starts Postgres with fsync off, and its Emscripten file
 * system answers fsync without syncing anything, so a commit it reported could vanish in a power cut or
 * a kernel crash. With fsync on, Postgres syncs the WAL at every commit (wal_sync_method=fsync) and the
 * data files at every checkpoint through `fsync()`, which Emscripten hands to the stream's `fsync`: here,
 * Node's fsync on the real file, or on the directory for a directory.
 */
function syncToDisk(pg: PGlite, fsync: (fd: number) => void): void {
  const mod = (pg as unknown as { mod: EmscriptenModule }).mod;
  const nodefs = mod.NODEFS;
  if (!nodefs) throw new Error("this PGlite build has no NODEFS: its data directory cannot be synced");
  nodefs.stream_ops.fsync = (stream: { nfd?: number; node: unknown }) => {
    try {
      if (stream.nfd !== undefined) fsync(stream.nfd);
      else syncPath(nodefs.realPath(stream.node), fsync);
      return 0;
    } catch {
      throw new mod.FS.ErrnoError(EIO);
    }
  };
}

/** Syncs every file and directory under `dir`: what initdb wrote with fsync off. */
function syncTree(dir: string, fsync: (fd: number) => void): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) syncTree(path, fsync);
    else if (entry.isFile()) syncPath(path, fsync);
  }
  syncPath(dir, fsync);
}

function syncPath(path: string, fsync: (fd: number) => void): void {
  const fd = openSync(path, "r");
  try {
    fsync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates a new data directory in a thread that then exits. initdb grows PGlite's WebAssembly memory by
 * hundreds of megabytes, which a process never gets back (`skiff up` on a new home held ~800 MB where a
 * restarted one held ~330); the thread's memory goes with it.
 */
async function initInThread(dataDir: string): Promise<void> {
  const pglite = createRequire(import.meta.url).resolve("@electric-sql/pglite");
  const init = `
    const { parentPort, workerData } = require("node:worker_threads");
    require(workerData.pglite).PGlite.create(workerData.dataDir)
      .then((pg) => pg.close())
      .then(() => parentPort.postMessage({}), (error) => parentPort.postMessage({ error: String(error?.message ?? error) }));
  `;
  const worker = new Worker(init, { eval: true, workerData: { pglite, dataDir } });
  try {
    const reply = await new Promise<{ error?: string }>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
      worker.once("exit", (code) => resolve({ error: `its thread exited (code ${code})` }));
    });
    if (reply.error) throw new Error(`could not create the embedded database in ${dataDir}: ${reply.error}`);
  } finally {
    await worker.terminate();
  }
}

/**
 * Creates `dataDir` whole or not at all: initdb runs in a sibling directory, which is synced and then
 * renamed into place, so a start killed halfway leaves no half-made store behind to fail every later one.
 */
async function createDataDir(dataDir: string, fsync: (fd: number) => void): Promise<void> {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
    throw new Error(
      `${dataDir} holds files but no database (no PG_VERSION): move it away and start again, and a new store is made there`,
    );
  }
  const parent = dirname(dataDir);
  mkdirSync(parent, { recursive: true });
  // Left by a start that was killed while it made the store (not one still making it).
  const prefix = `${basename(dataDir)}.new-`;
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix) && !isAlive(Number(name.slice(prefix.length))))
      rmSync(join(parent, name), { recursive: true, force: true });
  }
  const staging = `${dataDir}.new-${process.pid}`;
  await initInThread(staging);
  syncTree(staging, fsync);
  renameSync(staging, dataDir);
  syncPath(parent, fsync);
}

/**
 * Opens (creating if needed) an embedded Postgres in `dataDir`, or in memory when dataDir is undefined.
 * On disk, what it commits is synced before the commit returns (see syncToDisk).
 */
export async function openPglite(
  dataDir?: string,
  /** Tests watch the syncs through this. */
  options: { fsync?: (fd: number) => void } = {},
): Promise<Db> {
  const onDisk = dataDir !== undefined;
  const fsync = options.fsync ?? fsyncSync;
  if (onDisk) mkdirSync(dirname(dataDir), { recursive: true });
  const unlock = onDisk ? lockDataDir(dataDir) : () => {};
  try {
    return await openPgliteLocked(dataDir, fsync, unlock);
  } catch (error) {
    unlock();
    throw error;
  }
}

/**
 * A new cluster's data directory as a tar, made once per process for the stores opened in memory (tests
 * open one for nearly every case): initdb takes over a second, loading its copy a quarter of that.
 */
let newCluster: Promise<Blob> | undefined;

function newClusterDump(): Promise<Blob> {
  newCluster ??= PGlite.create()
    .then(async (pg) => {
      try {
        return await pg.dumpDataDir("none");
      } finally {
        await pg.close();
      }
    })
    .catch((error: unknown) => {
      newCluster = undefined;
      throw error;
    });
  return newCluster;
}

async function openPgliteLocked(
  dataDir: string | undefined,
  fsync: (fd: number) => void,
  unlock: () => void,
): Promise<Db> {
  const onDisk = dataDir !== undefined;
  if (onDisk && !existsSync(join(dataDir, "PG_VERSION"))) await createDataDir(dataDir, fsync);
  const pg = await PGlite.create(dataDir, {
    ...(onDisk ? {} : { loadDataDir: await newClusterDump() }),
    // PGlite's own bytea codec goes byte by byte in JS; Node's hex codec is several times faster, which
    // matters for the chunks of inputs and results the engine writes.
    serializers: {
      [BYTEA]: (bytes: Uint8Array) =>
        `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`,
    },
    parsers: { [BYTEA]: (text: string) => Buffer.from(text.slice(2), "hex") },
    startParams: [
      // On disk: without -F (fsync off), and syncing the WAL with fsync(), the one sync PGlite passes on.
      ...PGlite.defaultStartParams.filter((p) => !(onDisk && p === "-F")),
      ...(onDisk ? ["-c", "wal_sync_method=fsync"] : []),
      // The store's working set is small and the host's page cache holds its files: PGlite's default 128 MB
      // of shared buffers stayed resident for nothing (idle RSS 340 -> 212 MB, writes as fast).
      "-c",
      "shared_buffers=16MB",
    ],
  });
  if (onDisk) {
    syncToDisk(pg, fsync);
    // What startup wrote before PGlite's fsync was in place (recovery, say) reaches the disk now.
    await pg.exec("CHECKPOINT");
  }
  return new PgliteDb(pg, pg, unlock);
}
