import postgres from "postgres";
import type { Db } from "../db.js";

type Sql = postgres.Sql | postgres.TransactionSql;

class PostgresDb implements Db {
  readonly dialect = "postgres" as const;
  constructor(
    private readonly sql: Sql,
    private readonly root: postgres.Sql | undefined,
  ) {}

  async query<T>(text: string, params: readonly unknown[] = []): Promise<T[]> {
    const rows = await this.sql.unsafe(text, params as postgres.ParameterOrJSON<never>[]);
    return rows as unknown as T[];
  }

  async exec(text: string): Promise<void> {
    await this.sql.unsafe(text);
  }

  async transaction<T>(fn: (tx: Db) => Promise<T>): Promise<T> {
    if (!this.root) return fn(this);
    return (await this.root.begin((tx) => fn(new PostgresDb(tx, undefined)))) as T;
  }

  async close(): Promise<void> {
    await this.root?.end({ timeout: 5 });
  }
}

/** Connects to a PostgreSQL server, e.g. `postgres://root@127.0.0.1/skiff` or a Unix socket URL. */
export async function openPostgres(url: string, options: { max?: number } = {}): Promise<Db> {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    // bytea comes back as Buffer; ids stay strings (bigint columns are cast in queries).
    types: {},
  });
  await sql`select 1`;
  return new PostgresDb(sql, sql);
}
