import { setTimeout as sleep } from "node:timers/promises";
import { App, enter, Image, method, parameter, type SkiffFunction } from "skiff";
import { summarize } from "../baselines/stats.js";

/** The app `bench/run.ts` runs each entrypoint of, one `skiff run` per measurement. */
export const app = new App("skiff-bench");

/** Differs in every container: tells which container ran an input. */
const instance = Math.random().toString(36).slice(2, 10);

const handler = async (sleepMs: number): Promise<string> => {
  if (sleepMs > 0) await sleep(sleepMs);
  return instance;
};

/** No-op, one input at a time per container: the latency target. */
export const noop = app.function({}, handler);
/** No-op in one container running 16 inputs at once. */
export const noop1x16 = app.function({ maxContainers: 1, concurrent: { maxInputs: 16 } }, handler);
/** No-op in up to four containers running 16 inputs at once each. */
export const noop4x16 = app.function({ maxContainers: 4, concurrent: { maxInputs: 16 } }, handler);
/** No-op whose container stops one second after it goes idle, so that each sample starts a new one. */
export const cold = app.function({ scaledownWindow: 1 }, async () => ({ instance, uptimeMs: process.uptime() * 1000 }));

const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const report = (result: object) => console.log(`BENCH_RESULT ${JSON.stringify(result)}`);

/** Sequential `.remote()` round trips on a warm container, in milliseconds. */
export const latency = app.localEntrypoint(async ({ n = 1000, warmup = 100 }: { n?: number; warmup?: number }) => {
  const samples: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const start = process.hrtime.bigint();
    await noop.remote(0);
    if (i >= warmup) samples.push(elapsedMs(start));
  }
  const s = summarize(samples);
  report({ p50Ms: s.p50, p99Ms: s.p99, meanMs: s.mean });
});

/** Inputs per second of one `.map` of `n` no-ops, after warming every container the function may have. */
export const throughput = app.localEntrypoint(
  async ({ containers = 1, n = 10_000 }: { containers?: number; n?: number }) => {
    const fn: SkiffFunction<[number], string> = containers === 4 ? noop4x16 : noop1x16;
    // Inputs that sleep long enough that more containers pay off, so the autoscaler brings up every container
    // before the timed map.
    const seen = new Set<string>();
    for (let round = 0; round < 10 && seen.size < containers; round++) {
      for await (const id of fn.map(Array(containers * 16 * 2).fill(400))) seen.add(id);
    }
    // Untimed, as BullMQ gets its warm-up: the server's and runner's hot paths settle first.
    for await (const _ of fn.map(Array(n).fill(0))) {
      // results discarded
    }
    const start = process.hrtime.bigint();
    let count = 0;
    for await (const _ of fn.map(Array(n).fill(0))) count++;
    const totalMs = elapsedMs(start);
    if (count !== n) throw new Error(`got ${count} results for ${n} inputs`);
    report({ inputsPerSec: (n / totalMs) * 1000, totalMs, warmContainers: seen.size });
  },
);

/** `.remote()` that must start a container, waiting between samples for the last one to stop. */
export const coldStart = app.localEntrypoint(
  async ({ samples = 5, gapMs = 3500 }: { samples?: number; gapMs?: number }) => {
    const times: number[] = [];
    const uptimes: number[] = [];
    const containers = new Set<string>();
    for (let i = 0; i < samples; i++) {
      if (i > 0) await sleep(gapMs);
      const start = process.hrtime.bigint();
      const { instance: id, uptimeMs } = await cold.remote();
      times.push(elapsedMs(start));
      uptimes.push(uptimeMs);
      containers.add(id);
    }
    if (containers.size !== samples)
      throw new Error(`only ${containers.size} of ${samples} calls started a new container`);
    report({ p50Ms: summarize(times).p50, nodeUpMs: summarize(uptimes).p50, samples: times });
  },
);

// An image with the usual steps. SKIFF_BENCH_NONCE makes every layer new (a full build);
// SKIFF_BENCH_LAST changes only the last step.
const image = Image.debianSlim()
  .runCommands(`echo ${process.env.SKIFF_BENCH_NONCE ?? "bench"} > /etc/bench-nonce`)
  .aptInstall("jq")
  .npmInstall("sharp@0.33.5")
  .env({ MODE: "bench" })
  .workdir("/srv")
  .runCommands(`echo ${process.env.SKIFF_BENCH_LAST ?? "one"} > /etc/bench-last`);

/** A no-op on that image whose container stops one second after it goes idle. */
export const imaged = app.function({ image, scaledownWindow: 1 }, async () => ({ instance }));

/** One `.remote()` on the image: building what is missing, then a cold start. */
export const imageCall = app.localEntrypoint(async () => {
  const start = process.hrtime.bigint();
  await imaged.remote();
  report({ ms: elapsedMs(start) });
});

/** Sleeps, in up to four containers that stop one second after they go idle: the burst target. */
export const burstTarget = app.function({ maxContainers: 4, scaledownWindow: 1 }, handler);

/** `n` calls of `ms` each at once on a function with no container: from the first call to the last result. */
export const burst = app.localEntrypoint(async ({ n = 200, ms = 100 }: { n?: number; ms?: number }) => {
  const start = process.hrtime.bigint();
  const ids = await Promise.all(Array.from({ length: n }, () => burstTarget.remote(ms)));
  report({ ms: elapsedMs(start), containers: new Set(ids).size });
});

/** A class with an `enter` hook; each `pool` value is a pool of its own, so a new value starts cold. */
export const Pinger = app.cls(
  { scaledownWindow: 5 },
  class {
    @parameter() pool = 0;
    ready = false;

    @enter() load() {
      this.ready = true;
    }

    @method() ping() {
      return this.ready ? instance : "not ready";
    }
  },
);

/** A class method's first call on a new pool (cold) and its warm round trips, beside a function's warm ones. */
export const classLatency = app.localEntrypoint(async ({ samples = 3, n = 500 }: { samples?: number; n?: number }) => {
  const nonce = Date.now() % 1_000_000;
  const cold: number[] = [];
  for (let i = 0; i < samples; i++) {
    const start = process.hrtime.bigint();
    const got = await Pinger.with({ pool: nonce + i }).ping.remote();
    cold.push(elapsedMs(start));
    if (got === "not ready") throw new Error("the enter hook did not run before the method");
  }
  const pinger = Pinger.with({ pool: nonce });
  const warmClass: number[] = [];
  const warmFunction: number[] = [];
  for (let i = 0; i < 2 * n; i++) {
    let start = process.hrtime.bigint();
    await pinger.ping.remote();
    if (i >= n) warmClass.push(elapsedMs(start));
    start = process.hrtime.bigint();
    await noop.remote(0);
    if (i >= n) warmFunction.push(elapsedMs(start));
  }
  report({
    coldMs: summarize(cold).p50,
    warmMs: summarize(warmClass).p50,
    functionWarmMs: summarize(warmFunction).p50,
  });
});

/** Says how many bytes it was given and answers `resultBytes`: the payload rows time each way apart. */
export const reflect = app.function(
  { memory: "6GiB", timeout: "10m" },
  async (arg: Uint8Array, resultBytes: number) => ({
    argBytes: arg.length,
    result: new Uint8Array(resultBytes).fill(9),
  }),
);

/**
 * One `.remote()` with an argument of `mib` MiB and a small result, then one with a small argument and a
 * result of `mib` MiB, on a warm container; and an empty call, for what a call costs with no payload.
 */
export const payloads = app.localEntrypoint(async ({ mib = 10 }: { mib?: number }) => {
  const bytes = mib * 1024 * 1024;
  await reflect.remote(new Uint8Array(16), 16);
  let start = process.hrtime.bigint();
  await reflect.remote(new Uint8Array(16), 16);
  const emptyMs = elapsedMs(start);
  const arg = new Uint8Array(bytes).fill(7);
  start = process.hrtime.bigint();
  const sent = await reflect.remote(arg, 16);
  const argMs = elapsedMs(start);
  if (sent.argBytes !== bytes) throw new Error(`the function got ${sent.argBytes} bytes, not ${bytes}`);
  start = process.hrtime.bigint();
  const back = await reflect.remote(new Uint8Array(16), bytes);
  const resultMs = elapsedMs(start);
  if (back.result.length !== bytes || back.result[bytes - 1] !== 9) throw new Error("the result came back damaged");
  report({ emptyMs, argMs, resultMs });
});
