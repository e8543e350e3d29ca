import { randomBytes } from "node:crypto";
import postgres from "postgres";

/** The server tests create their databases on; trust auth on loopback on these machines. */
export const TEST_ADMIN_URL = process.env.SKIFF_TEST_DATABASE_URL ?? "postgres://root@127.0.0.1:5432/postgres";

/** Creates a fresh database (for one test file, or one bench run) on `adminUrl`'s server; `drop` removes it. */
export async function createTestDatabase(
  adminUrl: string = TEST_ADMIN_URL,
): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `skiff_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const again = postgres(adminUrl, { max: 1, onnotice: () => {} });
      await again.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await again.end();
    },
  };
}

/** Whether the test PostgreSQL answers: suites on it are skipped where it does not. */
export async function postgresReachable(): Promise<boolean> {
  const probe = postgres(TEST_ADMIN_URL, { max: 1, connect_timeout: 2, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}
