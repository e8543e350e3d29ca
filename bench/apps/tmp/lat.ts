import { summarize } from "../../baselines/stats.js";
import { app, noop } from "../skiff-bench.js";

export * from "../skiff-bench.js";
export const lat = app.localEntrypoint(async ({ n = 2000, warmup = 2000 }: { n?: number; warmup?: number }) => {
  const samples: number[] = [];
  const slow: [number, number][] = [];
  for (let i = 0; i < warmup + n; i++) {
    const start = process.hrtime.bigint();
    await noop.remote(0);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (i >= warmup) {
      samples.push(ms);
      if (ms > 1.5) slow.push([Date.now(), +ms.toFixed(2)]);
    }
  }
  const s = summarize(samples);
  console.log("LAT", JSON.stringify({ p50: s.p50, p99: s.p99, mean: s.mean, slow: slow.length }));
  console.log("SLOW", JSON.stringify(slow));
});
