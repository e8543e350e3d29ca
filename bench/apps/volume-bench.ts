import { mkdir, open, stat, writeFile } from "node:fs/promises";
import { App, Volume } from "skiff";
import { summarize } from "../baselines/stats.js";

/** The app of the bench's volume rows (`bench/run.ts`, section `volumes`). */
export const app = new App("volume-bench");

const empty = Volume.fromName("bench-empty", { createIfMissing: true });
const full = Volume.fromName("bench-full", { createIfMissing: true });
const big = Volume.fromName("bench-big", { createIfMissing: true });

const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const report = (result: object) => console.log(`BENCH_RESULT ${JSON.stringify(result)}`);

/** A container that starts, looks at its mount (if any) and answers; it stops 1 s after it goes idle. */
const probe = (dir?: string) => async () => {
  if (dir) await stat(dir);
  return process.uptime() * 1000;
};
export const noMount = app.function({ scaledownWindow: 1 }, probe());
export const emptyMount = app.function({ scaledownWindow: 1, volumes: { "/vol": empty } }, probe("/vol"));
export const fullMount = app.function({ scaledownWindow: 1, volumes: { "/vol": full } }, probe("/vol"));

/** Fills /vol with `files` files of `kib` KiB each (all different), in directories of 100, and commits once. */
export const fill = app.function(
  { volumes: { "/vol": full }, timeout: 1800, memory: 2048 },
  async (files: number, kib: number) => {
    const start = process.hrtime.bigint();
    const piece = Buffer.alloc(kib * 1024, 7);
    for (let i = 0; i < files; i++) {
      const dir = `/vol/d${String(Math.floor(i / 100)).padStart(3, "0")}`;
      if (i % 100 === 0) await mkdir(dir, { recursive: true });
      piece.writeUInt32LE(i, 0);
      await writeFile(`${dir}/f${i}`, piece);
    }
    const wroteMs = elapsedMs(start);
    const commitStart = process.hrtime.bigint();
    await full.commit();
    return { wroteMs, commitMs: elapsedMs(commitStart) };
  },
);

/** Commits one changed 1 MiB file in the full volume, `n` times; the commit's time only. */
export const commitOne = app.function({ volumes: { "/vol": full } }, async (n: number) => {
  const samples: number[] = [];
  const piece = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < n; i++) {
    piece.fill(i + 1);
    await writeFile("/vol/changed.bin", piece);
    const start = process.hrtime.bigint();
    await full.commit();
    samples.push(elapsedMs(start));
  }
  return summarize(samples).p50;
});

/** Reads /vol/big.bin from start to end in 1 MiB reads; MiB/s. */
export const readBig = app.function({ volumes: { "/vol": big.readOnly() } }, async () => {
  const file = await open("/vol/big.bin");
  const buffer = Buffer.alloc(1024 * 1024);
  const start = process.hrtime.bigint();
  let bytes = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
    if (bytesRead === 0) break;
    bytes += bytesRead;
  }
  await file.close();
  return { bytes, ms: elapsedMs(start) };
});

/** Cold starts (each call a new container, the last one stopped) of `fn`: from the call to its answer, ms. */
async function coldStarts(fn: typeof noMount, n: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const start = process.hrtime.bigint();
    await fn.remote();
    samples.push(elapsedMs(start));
  }
  return samples;
}

export const seed = app.localEntrypoint(async ({ files = 10_000, kib = 105 }: { files?: number; kib?: number }) => {
  report(await fill.remote(files, kib));
});

export const mounts = app.localEntrypoint(async ({ n = 5 }: { n?: number }) => {
  const median = async (fn: typeof noMount) => summarize(await coldStarts(fn, n)).p50;
  report({ none: await median(noMount), empty: await median(emptyMount), full: await median(fullMount) });
});

export const commit = app.localEntrypoint(async ({ n = 5 }: { n?: number }) => {
  report({ p50Ms: await commitOne.remote(n) });
});

export const read = app.localEntrypoint(async () => {
  report(await readBig.remote());
});
