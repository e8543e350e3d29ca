import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { Db } from "../db.js";

const BYTEA = 17;

type Queryable = Pick<PGlite, "query" | "exec"> | Transaction;

class PgliteDb implements Db {
  readonly dialect = "pglite" as const;
  constructor(
    private readonly conn: Queryable,
    private readonly root: PGlite | undefined,
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
    await this.root?.close();
  }
}

/** Opens (creating if needed) an embedded Postgres in `dataDir`, or in memory when dataDir is undefined. */
export async function openPglite(dataDir?: string): Promise<Db> {
  const pg = await PGlite.create(dataDir, {
    // PGlite's own bytea codec goes byte by byte in JS; Node's hex codec is several times faster, which
    // matters for the chunks of inputs and results the engine writes.
    serializers: {
      [BYTEA]: (bytes: Uint8Array) =>
        `\\x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`,
    },
    parsers: { [BYTEA]: (text: string) => Buffer.from(text.slice(2), "hex") },
  });
  return new PgliteDb(pg, pg);
}
