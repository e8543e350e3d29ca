// How a volume's commits and listings scale with its size, on both stores: a one-file commit into a volume of
// 10 files and of 10,000, and a listing of one 10-entry directory of the 10,000-file volume.
// Run: npx vite-node bench/volume-store.ts  (PostgreSQL from SKIFF_TEST_DATABASE_URL, skipped if unreachable)
import { performance } from "node:perf_hooks";
import { type Db, openPglite, openPostgres, Store, type VolumeChange } from "@skiff/store";
import { createTestDatabase, postgresReachable } from "../internal/store/src/testing/postgres-fixture.js";

const SCOPE = { workspace: "ws-local", env: "main" };
const INFO = { author: "bench", note: "bench" };
const hash = (i: number) => i.toString(16).padStart(64, "0");
const file = (path: string, i: number): VolumeChange => ({
  path,
  type: "file",
  size: 100,
  mode: 0o644,
  mtimeMs: 0,
  chunks: [hash(i)],
});

/** The median of `runs` timings of `work`, in ms. */
async function median(runs: number, work: (i: number) => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work(i);
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

/** A volume of `files` files: directories d000… of 100 files each, plus `small/` with 10. */
async function volumeOf(store: Store, name: string, files: number) {
  const { volume } = await store.volumes.create(SCOPE, name, { author: "bench" });
  const changes: VolumeChange[] = Array.from({ length: 10 }, (_, i) => file(`small/f${i}`, i));
  for (let i = 10; i < files; i++) changes.push(file(`d${String(Math.floor(i / 100)).padStart(3, "0")}/f${i}`, i));
  for (let at = 0; at < changes.length; at += 2000) {
    await store.volumes.commit(volume, changes.slice(at, at + 2000), INFO);
  }
  return volume;
}

async function measure(label: string, db: Db): Promise<void> {
  const store = new Store(db);
  await store.migrate();
  const rows: string[] = [];
  for (const files of [10, 10_000]) {
    const volume = await volumeOf(store, `bench-${files}`, files);
    const commit = await median(21, (i) => store.volumes.commit(volume, [file("small/f3", 1_000_000 + i)], INFO));
    const latest = (await store.volumes.find(SCOPE, volume.name))!;
    const list = await median(51, () => store.volumes.list(latest, "small"));
    const entries = (await store.volumes.list(latest, "small")).entries.length;
    rows.push(`| ${label} | ${files} | ${commit.toFixed(2)} ms | ${list.toFixed(2)} ms (${entries} entries) |`);
  }
  console.log(rows.join("\n"));
  await store.close();
}

console.log(
  "| store | files in the volume | one-file commit (median of 21) | list a 10-entry directory (median of 51) |",
);
console.log("| --- | ---: | ---: | ---: |");
await measure("PGlite", await openPglite());
if (await postgresReachable()) {
  const database = await createTestDatabase();
  try {
    await measure("PostgreSQL", await openPostgres(database.url));
  } finally {
    await database.drop();
  }
}
