// One-command benchmark (`make bench`): Skiff against its baselines, side by side, into bench/RESULTS.md.
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { copyFile, mkdtemp, open, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { bullmqThroughput } from "./baselines/bullmq.js";
import { containerEchoLatency } from "./baselines/container-echo.js";
import { honoPostLatency } from "./baselines/hono-post.js";
import { httpLoad, type LoadResult } from "./baselines/http-load.js";
import { httpUpload } from "./baselines/http-upload.js";
import { rawContainerStart } from "./baselines/raw-container.js";
import { summarize } from "./baselines/stats.js";
import { cgroupCpuMs, processCpuMs } from "./cpu.js";
import { goalMet, machine, type Row, table, writeResults } from "./report.js";
import { createDatabase, type Service, type SkiffStack, startHonoServer, startRedis, startSkiff } from "./services.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MAP_INPUTS = 10_000;
const IDLE_MS = 5000;
/** Seconds each warm web figure is measured; the 1,000-connection run takes three times as long. */
const WEB_SECONDS = Number(process.env.SKIFF_BENCH_WEB_SECONDS ?? 10);
const WEB_APP = "bench/apps/web-bench.ts";
const WEB_CONNECTIONS = [1, 64] as const;
const BURST_CONNECTIONS = 1000;

const HOW = [
  "How each figure is taken:",
  "",
  "- store: `skiff up` keeps its data in the embedded PGlite store, unless the section says PostgreSQL (`--store postgres`: a new database on the local server, `SKIFF_BENCH_POSTGRES` names the server; idle RSS then counts `skiff up` alone);",
  "- warm latency: 2,000 sequential `.remote()` calls of a no-op after 2,000 warm-up calls (one warm container), against 2,000 keep-alive POSTs to a plain Hono app on loopback after 2,000 warm-up (client and server in one process). The floor adds what no design that runs the function in a container avoids: a 64-byte round trip over a Unix socket between this process and node in a raw `runc|runsc run` container (socket directory bind-mounted, runsc with `--host-uds=all` on ptrace, as Skiff runs it), 2,000 after 2,000;",
  `- throughput: one \`.map\` of ${MAP_INPUTS.toLocaleString("en-US")} no-op inputs once every container is warm and after an untimed map of as many, against BullMQ on a private Redis with one Worker of the same total concurrency, after a warm-up of as many jobs;`,
  "- cold start: 5 `.remote()` calls that each start a new container (base image cached; the previous one stopped after its 1 s scaledown window; the worker keeps spare runners, its default, so a start takes one when it is ready), against `runc|runsc run` in a fresh overlay bundle of node importing the same bundle and calling the function once (the same node process), and of bare `node -e` (the floor); the in-container row is the Node process's uptime when the handler ran (a spare runner's Node was started ahead, so it is then the spare's age);",
  "- images: one `.remote()` on a function whose image has six layers (apt, npm with a native module, env, workdir, two commands): with every layer new, then with only the last step changed, then three times on the cached image; a build's time is its first call's minus the median cold start on the cached image, which is compared with the cold start on the base image above;",
  "- burst: 200 `.remote()` calls at once, each sleeping 100 ms, on a function with no container and up to 4; from the first call to the last result. The floor is one raw container start plus 200 × 100 ms / 4; BullMQ runs the same 200 jobs with concurrency 4 in workers already running (no isolation, no cold start);",
  "- class method: the first call on a new parameter set (a new pool: container start and an `enter` hook), median of 3, and warm round trips (median of 500 after 500) beside a plain function's in the same loop;",
  "- payloads: on a warm container, one `.remote()` whose argument is a Uint8Array of 10, 100 or 1,000 MiB (result 16 bytes), then one whose result is (argument 16 bytes): from the call to its result, through the SDK's blob upload, the server's blob store (synced to disk) and the container's api.sock relay (the runner reads an argument and puts a result itself). Against one plain HTTP upload of as many bytes to a node:http server on loopback in the bench's process, after a warm-up of a tenth;",
  `- web: the handler of bench/apps/hello-hono.ts (GET / answers a small JSON naming the container, 34 bytes outside Skiff) served by @hono/node-server in a process of its own on 127.0.0.1, and by Skiff as \`app.web\` through the server's gateway and the worker's relay into one warm container (minContainers 1, maxInputs 100); closed-loop GETs from undici in the bench's process over 1 and 64 kept-alive connections, ${WEB_SECONDS} s each after ${WEB_SECONDS / 5} s of warm-up (\`SKIFF_BENCH_WEB_SECONDS\` changes it); latencies are of 200 answers. CPU per request is the CPU time (from /proc, user + system) that the plain Hono server, \`skiff up\` and the warm container's processes (found by their cgroup) used while the requests were counted, over the 200 answers: it varies far less with a busy machine than latencies and rates do. The floor on gVisor adds the raw container hop of the warm-latency rows (sequential round trips) to plain Hono's p50. Then ${BURST_CONNECTIONS.toLocaleString("en-US")} connections for ${3 * WEB_SECONDS} s at a web function with no container (up to 10 × 100 requests): a 503 is the platform refusing on purpose (the connection waits its Retry-After), any other status or a request that got no answer is an error; containers are counted by the ids in the answers;`,
  "- volumes (bench/apps/volume-bench.ts): a 1 GiB file (each MiB different) copied with `cp` on the host's disk, and put into a volume with `skiff volume put`; read from start to end in 1 MiB reads inside a container through a read-only mount (the function's own timing) against the same reads of the host file (just written: likely in the page cache); a function that writes 10,000 files of 105 KiB (1.0 GiB) into a mounted volume and commits once; cold starts (median of 5, each container stopped before the next) of a function with no mount, with an empty volume and with that 10,000-file volume mounted; a function that rewrites one 1 MiB file of the 10,000-file volume and commits it, median of 5 commits;",
  "- snapshots (bench/apps/snapshot-bench.ts): a class whose `enter` hook waits 2 s and fills a 200 MiB table of pseudo-random numbers, with `enableMemorySnapshot` and the hook marked `snap: true`, and the same class booting each container: the time to a first result of a call that starts a new container (median of 3, each container stopped before the next), the first call of the snapshotted class (which boots and takes the snapshot), the snapshot's size on the worker's disk, and the phases `skiff container list --phases` shows; then `skiff run examples/hello.ts` 10 times, each 1 s (the edit) after the last ended and after a one-line edit of the file (a new bundle, a new app), wall clock from the command to its exit with `skiff up` warm;",
  `- idle RSS: VmRSS of the \`skiff up\` process (server + worker) ${IDLE_MS / 1000} s after it started with no apps, on a new SKIFF_HOME (PGlite runs initdb), then restarted on that home, and again once the bench's apps have stopped.`,
].join("\n");

const ms = (v: number) => `${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`;
const us = (v: number) => `${v.toFixed(0)} µs`;
const mib = (v: number) => `${v.toFixed(0)} MiB`;
const rate = (v: number) => `${Math.round(v).toLocaleString("en-US")} /s`;
const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** Trimmed stdout of a command, or "" if it fails. GIT_OPTIONAL_LOCKS=0 keeps `git status` from writing the index. */
async function output(cmd: string, args: string[]): Promise<string> {
  const env = { ...process.env, GIT_OPTIONAL_LOCKS: "0" };
  const result = await promisify(execFile)(cmd, args, { cwd: ROOT, env }).catch(() => ({ stdout: "" }));
  return result.stdout.trim();
}

async function versions(): Promise<string> {
  const [runsc, runc] = await Promise.all([output("runsc", ["--version"]), output("runc", ["--version"])]);
  return [runsc, runc].map((v) => v.split("\n")[0] || "not found").join("; ");
}

async function revision(): Promise<string> {
  const head = await output("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = await output("git", ["status", "--porcelain", "--untracked-files=no"]);
  return head ? `${head}${dirty ? " with uncommitted changes" : ""}` : "unknown";
}

function nodeDir(cacheDir: string): string {
  const major = process.versions.node.split(".")[0];
  const parent = join(cacheDir, "node");
  const found = existsSync(parent) ? readdirSync(parent).filter((v) => v.startsWith(`${major}.`)) : [];
  if (found.length === 0) throw new Error(`no Node ${major} build in ${parent}: run \`make setup\``);
  return join(parent, found.sort().at(-1)!);
}

const SECTIONS = [
  "latency",
  "throughput",
  "cold",
  "images",
  "scale",
  "payloads",
  "web",
  "volumes",
  "snapshots",
] as const;
type Section = (typeof SECTIONS)[number];

type Store = "pglite" | "postgres";

async function bench(
  runtime: "gvisor" | "runc",
  store: Store,
  services: Service[],
  only: Set<Section>,
): Promise<Row[]> {
  const cacheDir = process.env.SKIFF_CACHE_DIR ?? join(homedir(), ".skiff", "cache");
  const rootfs = join(cacheDir, "rootfs", "bookworm-minbase");
  const node = nodeDir(cacheDir);
  if (!existsSync(rootfs)) throw new Error(`no base image at ${rootfs}: run \`make setup\``);

  const home = await mkdtemp(join(tmpdir(), "skiff-bench-"));
  services.push({ stop: () => rm(home, { recursive: true, force: true }) });
  let databaseUrl: string | undefined;
  if (store === "postgres") {
    const database = await createDatabase(process.env.SKIFF_BENCH_POSTGRES ?? "postgres://postgres@127.0.0.1/postgres");
    services.push(database);
    databaseUrl = database.url;
  }
  say(`idle RSS: skiff up (${runtime}) on a new home, then again on that home`);
  const first = await startSkiff({ root: ROOT, runtime, home, cacheDir, databaseUrl });
  services.push(first);
  await sleep(IDLE_MS);
  const firstRss = await first.rss();
  await first.stop();
  const skiff = await startSkiff({ root: ROOT, runtime, home, cacheDir, databaseUrl });
  services.push(skiff);
  await sleep(IDLE_MS);
  const idleRss = await skiff.rss();
  const redis = await startRedis();
  services.push(redis);

  const rows: Row[] = [];
  if (only.has("latency")) rows.push(...(await latencyRows(skiff, runtime, rootfs, node)));
  if (only.has("throughput")) rows.push(...(await throughputRows(skiff, redis)));
  if (only.has("cold")) rows.push(...(await coldRows(skiff, runtime, home, rootfs, node, services)));
  if (only.has("images")) rows.push(...(await imageRows(skiff, runtime)));
  if (only.has("scale")) rows.push(...(await scaleRows(skiff, runtime, redis, rootfs, node)));
  if (only.has("payloads")) rows.push(...(await payloadRows(skiff, runtime)));
  if (only.has("web")) rows.push(...(await webRows(skiff, runtime, rootfs, node, services)));
  if (only.has("volumes")) rows.push(...(await volumeRows(skiff, runtime, home)));
  if (only.has("snapshots")) rows.push(...(await snapshotRows(skiff, runtime, home)));

  await sleep(IDLE_MS);
  rows.push(
    { what: "idle RSS of `skiff up`, first start (new SKIFF_HOME)", skiff: mib(firstRss) },
    { what: "idle RSS of `skiff up`, later start", skiff: mib(idleRss) },
    { what: "idle RSS of `skiff up`, after the bench", skiff: mib(await skiff.rss()) },
  );
  return rows;
}

async function latencyRows(
  skiff: SkiffStack,
  runtime: "gvisor" | "runc",
  rootfs: string,
  node: string,
): Promise<Row[]> {
  say("warm latency: Hono, a raw container's socket round trip, then Skiff");
  // Both sides warm up alike: Skiff's path crosses three processes (client, server, runner) whose JIT
  // needs more than a few hundred calls to settle.
  const hono = await honoPostLatency({ requests: 2000, warmup: 2000 });
  const same = runtime === "gvisor" ? "runsc" : "runc";
  const echo = await containerEchoLatency({ runtime: same, rootfs, nodeDir: node, requests: 2000, warmup: 2000 });
  const warm = await skiff.run<{ p50Ms: number; p99Ms: number }>("latency", { n: 2000, warmup: 2000 });
  await skiff.settle();
  // A warm call crosses at least one HTTP-like hop (caller → server) and one hop into the container.
  const floor = { p50Ms: hono.p50Ms + echo.p50Ms, p99Ms: hono.p99Ms + echo.p99Ms };
  return [
    {
      what: "warm `.remote()` p50",
      skiff: ms(warm.p50Ms),
      baseline: `${ms(hono.p50Ms)} Hono POST`,
      ratio: warm.p50Ms / hono.p50Ms,
      goal: { op: "≤", ratio: 2 },
    },
    {
      what: "warm `.remote()` p99",
      skiff: ms(warm.p99Ms),
      baseline: `${ms(hono.p99Ms)} Hono POST`,
      ratio: warm.p99Ms / hono.p99Ms,
      goal: { op: "≤", ratio: 2 },
    },
    {
      what: `floor of a warm call, p50: Hono POST + a socket round trip into a raw \`${same} run\` container`,
      skiff: ms(floor.p50Ms),
      baseline: `${ms(hono.p50Ms)} Hono POST (hop ${ms(echo.p50Ms)}, p99 ${ms(echo.p99Ms)})`,
      ratio: floor.p50Ms / hono.p50Ms,
    },
    {
      what: "warm `.remote()` p50 vs its floor (Hono POST + container hop)",
      skiff: ms(warm.p50Ms),
      baseline: `${ms(floor.p50Ms)} floor`,
      ratio: warm.p50Ms / floor.p50Ms,
    },
    {
      what: "warm `.remote()` p99 vs its floor (Hono POST + container hop)",
      skiff: ms(warm.p99Ms),
      baseline: `${ms(floor.p99Ms)} floor`,
      ratio: warm.p99Ms / floor.p99Ms,
    },
  ];
}

async function throughputRows(skiff: SkiffStack, redis: { port: number }): Promise<Row[]> {
  const rows: Row[] = [];
  for (const containers of [1, 4]) {
    const concurrency = containers * 16;
    say(`map throughput: BullMQ ${concurrency}, then Skiff ${containers}×16`);
    const connection = { host: "127.0.0.1", port: redis.port };
    await bullmqThroughput({ jobs: MAP_INPUTS, concurrency, connection });
    const bull = await bullmqThroughput({ jobs: MAP_INPUTS, concurrency, connection });
    const map = await skiff.run<{ inputsPerSec: number; warmContainers: number }>("throughput", {
      containers,
      n: MAP_INPUTS,
    });
    await skiff.settle();
    rows.push({
      what: `\`.map\` 10k no-ops, ${containers}×16 (${map.warmContainers} warm)`,
      skiff: rate(map.inputsPerSec),
      baseline: `${rate(bull.jobsPerSec)} BullMQ c=${concurrency}`,
      ratio: map.inputsPerSec / bull.jobsPerSec,
      goal: { op: "≥", ratio: 1.5 },
    });
  }
  return rows;
}

async function coldRows(
  skiff: SkiffStack,
  runtime: "gvisor" | "runc",
  home: string,
  rootfs: string,
  node: string,
  services: Service[],
): Promise<Row[]> {
  say("cold start: Skiff, then runc and runsc (bare node, and node running the same bundle)");
  const cold = await skiff.run<{ p50Ms: number; nodeUpMs: number }>("coldStart", { samples: 5 });
  await skiff.settle();
  const code = { bundleDir: await latestBundle(home), exportName: "cold" };
  services.push({ stop: () => rm(code.bundleDir, { recursive: true, force: true }) });
  const raw = {
    runc: await rawContainerStart({ runtime: "runc", rootfs, nodeDir: node, runs: 5 }),
    runsc: await rawContainerStart({ runtime: "runsc", rootfs, nodeDir: node, runs: 5 }),
  };
  const same = runtime === "gvisor" ? "runsc" : "runc";
  const other = runtime === "gvisor" ? "runc" : "runsc";
  const sameCode = await rawContainerStart({ runtime: same, rootfs, nodeDir: node, runs: 5, code });
  return [
    {
      what: `cold \`.remote()\` p50, ${runtime}`,
      skiff: ms(cold.p50Ms),
      baseline: `${ms(sameCode.p50Ms)} \`${same} run\` of node running the same bundle`,
      ratio: cold.p50Ms / sameCode.p50Ms,
      goal: { op: "≤", ratio: 0.5 },
    },
    {
      what: `cold \`.remote()\` p50 vs bare node, ${runtime}`,
      skiff: ms(cold.p50Ms),
      baseline: `${ms(raw[same].p50Ms)} \`${same} run\` of \`node -e\``,
      ratio: cold.p50Ms / raw[same].p50Ms,
    },
    // With a spare runner, its Node was up long before the call: this is then the spare's age.
    { what: "cold: the container's Node process age when the handler ran, p50", skiff: ms(cold.nodeUpMs) },
    { what: `raw container start p50, ${other}`, baseline: `${ms(raw[other].p50Ms)} \`${other} run\`` },
  ];
}

async function imageRows(skiff: SkiffStack, runtime: "gvisor" | "runc"): Promise<Row[]> {
  say("images: a full build, a rebuild of the last step, and a cold start on the cached image");
  const nonce = { SKIFF_BENCH_NONCE: `${Date.now()}` };
  const full = await skiff.run<{ ms: number }>("imageCall", {}, { ...nonce, SKIFF_BENCH_LAST: "one" });
  await sleep(3500);
  const rebuild = await skiff.run<{ ms: number }>("imageCall", {}, { ...nonce, SKIFF_BENCH_LAST: "two" });
  const cached: number[] = [];
  for (let i = 0; i < 3; i++) {
    await sleep(3500); // the last container stops (1 s scaledown window)
    cached.push((await skiff.run<{ ms: number }>("imageCall", {}, { ...nonce, SKIFF_BENCH_LAST: "two" })).ms);
  }
  await skiff.settle();
  const cachedMs = cached.sort((a, b) => a - b)[1]!;
  // Each first call also starts a container; the cold start on the cached image is that part.
  const fullBuild = Math.max(0, full.ms - cachedMs);
  const lastStep = Math.max(0, rebuild.ms - cachedMs);
  const cold = await skiff.run<{ p50Ms: number }>("coldStart", { samples: 3 });
  await skiff.settle();
  return [
    { what: "image (6 layers: run, apt, npm, env, workdir, run): full build", skiff: ms(fullBuild) },
    {
      what: "image: rebuild after changing the last step",
      skiff: ms(lastStep),
      baseline: `${ms(fullBuild)} full build`,
      ratio: lastStep / fullBuild,
      goal: { op: "≤", ratio: 0.05 },
    },
    {
      what: `cold \`.remote()\` on the cached image, ${runtime}`,
      skiff: ms(cachedMs),
      baseline: `${ms(cold.p50Ms)} cold on the base image`,
      ratio: cachedMs / cold.p50Ms,
    },
  ];
}

/** MiB/s of a large argument and a large result, beside a plain HTTP upload of the same bytes. */
async function payloadRows(skiff: SkiffStack, runtime: "gvisor" | "runc"): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of [10, 100, 1000]) {
    say(`payloads: ${size} MiB, a plain HTTP upload, then an argument and a result`);
    const upload = await httpUpload(size * 1024 * 1024);
    const call = await skiff.run<{ emptyMs: number; argMs: number; resultMs: number }>("payloads", { mib: size });
    await skiff.settle();
    const speed = (ms: number) => size / (ms / 1000);
    for (const [way, took] of [
      ["argument", call.argMs],
      ["result", call.resultMs],
    ] as const) {
      rows.push({
        what: `${size.toLocaleString("en-US")} MiB ${way}, ${runtime} (${ms(took)}; empty call ${ms(call.emptyMs)})`,
        skiff: `${speed(took).toFixed(0)} MiB/s`,
        baseline: `${upload.mibPerSec.toFixed(0)} MiB/s plain HTTP upload (${ms(upload.ms)})`,
        ratio: speed(took) / upload.mibPerSec,
        goal: runtime === "runc" ? { op: "≥", ratio: 0.5 } : undefined,
      });
    }
  }
  return rows;
}

const VOLUME_APP = "bench/apps/volume-bench.ts";

/**
 * Volumes: `skiff volume put` against `cp`, a mounted read against a host read, the time to mount a 10,000-file
 * 1 GiB volume against an empty one, and a one-file commit in it.
 */
async function volumeRows(skiff: SkiffStack, runtime: "gvisor" | "runc", home: string): Promise<Row[]> {
  const rows: Row[] = [];
  const work = await mkdtemp(join(home, "volumes-"));
  const source = join(work, "big.bin");
  say("volumes: a 1 GiB file: cp on the host, then skiff volume put");
  const handle = await open(source, "w");
  const piece = Buffer.alloc(1024 * 1024, 3);
  for (let i = 0; i < 1024; i++) {
    piece.writeUInt32LE(i, 0);
    await handle.write(piece);
  }
  await handle.close();
  const timed = async (task: () => Promise<unknown>) => {
    const start = performance.now();
    await task();
    return performance.now() - start;
  };
  const cpMs = await timed(() => promisify(execFile)("cp", [source, join(work, "copy.bin")]));
  await skiff.cli(["volume", "create", "bench-big"]);
  const putMs = await timed(() => skiff.cli(["volume", "put", "bench-big", source, "big.bin"]));
  const speed = (took: number) => 1024 / (took / 1000);
  rows.push({
    what: `skiff volume put, 1 GiB, ${runtime} (${ms(putMs)})`,
    skiff: `${speed(putMs).toFixed(0)} MiB/s`,
    baseline: `${speed(cpMs).toFixed(0)} MiB/s cp on the host (${ms(cpMs)})`,
    ratio: speed(putMs) / speed(cpMs),
  });
  say("volumes: reading the 1 GiB file through a mount, and on the host");
  const mounted = await skiff.run<{ bytes: number; ms: number }>(`${VOLUME_APP}::read`);
  const hostMs = await timed(async () => {
    const file = await open(source);
    const buffer = Buffer.alloc(1024 * 1024);
    while ((await file.read(buffer, 0, buffer.length, null)).bytesRead > 0);
    await file.close();
  });
  rows.push({
    what: `sequential read of a 1 GiB file in a ${runtime} container, mounted (${ms(mounted.ms)})`,
    skiff: `${speed(mounted.ms).toFixed(0)} MiB/s`,
    baseline: `${speed(hostMs).toFixed(0)} MiB/s on the host (${ms(hostMs)})`,
    ratio: speed(mounted.ms) / speed(hostMs),
    goal: { op: "≥", ratio: 0.8 },
  });
  await rm(work, { recursive: true, force: true });
  say("volumes: 10,000 files (1 GiB) written into a mounted volume and committed");
  const fill = await skiff.run<{ wroteMs: number; commitMs: number }>(`${VOLUME_APP}::seed`);
  rows.push({
    what: `10,000 new files (1.0 GiB) in a ${runtime} container: written ${ms(fill.wroteMs)}, then committed`,
    skiff: ms(fill.commitMs),
  });
  await skiff.settle();
  say("volumes: cold starts with no mount, an empty volume and the 10,000-file one");
  const starts = await skiff.run<{ none: number; empty: number; full: number }>(`${VOLUME_APP}::mounts`);
  rows.push({
    what: `cold start with an empty volume mounted, ${runtime} (median of 5)`,
    skiff: ms(starts.empty),
    baseline: `${ms(starts.none)} with no mount`,
    ratio: starts.empty / starts.none,
  });
  rows.push({
    what: `cold start with a 10,000-file, 1 GiB volume mounted, ${runtime} (median of 5)`,
    skiff: ms(starts.full),
    baseline: `${ms(starts.empty)} with an empty volume`,
    ratio: starts.full / starts.empty,
    check: { goal: "< 100 ms more than empty", met: starts.full - starts.empty < 100 },
  });
  const commit = await skiff.run<{ p50Ms: number }>(`${VOLUME_APP}::commit`);
  rows.push({
    what: `commit of one changed 1 MiB file in the 10,000-file volume, ${runtime} (median of 5)`,
    skiff: ms(commit.p50Ms),
    check: { goal: "< 100 ms", met: commit.p50Ms < 100 },
  });
  await skiff.settle();
  return rows;
}

const SNAPSHOT_APP = "bench/apps/snapshot-bench.ts";

async function snapshotRows(skiff: SkiffStack, runtime: "gvisor" | "runc", home: string): Promise<Row[]> {
  say("snapshots: a class with a 2 s, 200 MiB enter hook, restored from its snapshot and booted");
  type Cold = { p50: number; phases: string };
  const result = await skiff.run<{ takeMs: number; takePhases: string; restored: Cold; booted: Cold }>(
    `${SNAPSHOT_APP}::snapshots`,
    { n: 3 },
  );
  await skiff.settle();
  const dir = join(home, "worker", "snapshots");
  const sizes = await Promise.all(
    (await readdir(dir).catch(() => [] as string[])).map(async (name) => {
      const files = await readdir(join(dir, name));
      const bytes = await Promise.all(files.map(async (file) => (await stat(join(dir, name, file))).size));
      return bytes.reduce((a, b) => a + b, 0);
    }),
  );
  const rows: Row[] = [
    {
      what: `class with a 2 s, 200 MiB snap hook: new container to first result, ${runtime} (median of 3)`,
      skiff: `${ms(result.restored.p50)} restored`,
      baseline: `${ms(result.booted.p50)} booted`,
      ratio: result.restored.p50 / result.booted.p50,
      goal: { op: "≤", ratio: 0.2 },
    },
    { what: "  phases, restored", skiff: result.restored.phases || "(not listed)" },
    { what: "  phases, booted", skiff: result.booted.phases || "(not listed)" },
    {
      what: `first call of the snapshotted class: boot, hook, snapshot, restore (${result.takePhases || "phases not listed"})`,
      skiff: ms(result.takeMs),
    },
    { what: "its snapshot on the worker's disk", skiff: mib(Math.max(0, ...sizes) / 2 ** 20) },
  ];
  say("snapshots: edit examples/hello.ts, skiff run it, 10 times");
  const file = join(ROOT, "bench", "apps", ".edit-loop.ts");
  const source = await readFile(join(ROOT, "examples", "hello.ts"), "utf8");
  const walls: number[] = [];
  try {
    for (let i = 0; i < 10; i++) {
      await sleep(1000); // the edit
      await writeFile(file, `${source}\n// edit ${i} ${Date.now()}\n`);
      const start = performance.now();
      await skiff.cli(["run", file]);
      walls.push(performance.now() - start);
    }
  } finally {
    await rm(file, { force: true });
  }
  await skiff.settle();
  const wall = summarize(walls).p50;
  rows.push({
    what: `edit → \`skiff run examples/hello.ts\` → result, wall clock, ${runtime} (median of 10)`,
    skiff: ms(wall),
    check: { goal: "< 1 s", met: wall < 1000 },
  });
  return rows;
}

/** A load's figures, with the CPU time each measured party used per 200 answer (µs), while it was counted. */
type MeteredLoad = LoadResult & { cpuUs: Record<string, number> };

/**
 * One warm figure of the web rows: requests at `connections` at once for WEB_SECONDS, after a warm-up; with
 * the CPU time per answer of each party in `meters` (a function giving its CPU time so far, in ms).
 */
async function webLoad(
  url: string,
  connections: number,
  meters: Record<string, () => Promise<number>>,
): Promise<MeteredLoad> {
  const before: Record<string, number> = {};
  const cpuUs: Record<string, number> = {};
  const sample = async (into: Record<string, number>) => {
    for (const [name, meter] of Object.entries(meters)) into[name] = await meter();
  };
  const load = await httpLoad({
    url,
    connections,
    durationMs: WEB_SECONDS * 1000,
    warmupMs: WEB_SECONDS * 200,
    onCounting: (phase) => sample(phase === "start" ? before : cpuUs),
  });
  for (const name of Object.keys(meters)) cpuUs[name] = ((cpuUs[name]! - before[name]!) * 1000) / Math.max(load.ok, 1);
  return { ...load, cpuUs };
}

/**
 * The same Hono handler served by a plain Hono server and by Skiff (`app.web`, warm), at 1 and 64
 * connections; then 1,000 connections at a web function with no container.
 */
async function webRows(
  skiff: SkiffStack,
  runtime: "gvisor" | "runc",
  rootfs: string,
  node: string,
  services: Service[],
): Promise<Row[]> {
  say(`web: plain Hono on loopback at ${WEB_CONNECTIONS.join(" and ")} connections, ${WEB_SECONDS} s each`);
  const hono = await startHonoServer(ROOT);
  services.push(hono);
  const plain = new Map<number, MeteredLoad>();
  for (const connections of WEB_CONNECTIONS) {
    plain.set(connections, await webLoad(`${hono.url}/`, connections, { server: () => processCpuMs(hono.pid) }));
  }
  await hono.stop();

  say("web: Skiff, app.web on one warm container");
  const urls = await skiff.deploy(WEB_APP);
  if (!urls.warm || !urls.cold) throw new Error(`skiff deploy ${WEB_APP} printed no URL for warm and cold`);
  services.push({ stop: () => skiff.cli(["app", "stop", "skiff-bench-web"]).then(() => {}) });
  await untilAnswered(urls.warm);
  // The warm function's one container names itself in its answers.
  const warmContainer = ((await (await fetch(urls.warm)).json()) as { container: string }).container;
  const meters = { up: () => processCpuMs(skiff.pid), container: () => cgroupCpuMs(warmContainer) };
  const viaSkiff = new Map<number, MeteredLoad>();
  for (const connections of WEB_CONNECTIONS) viaSkiff.set(connections, await webLoad(urls.warm, connections, meters));
  const same = runtime === "gvisor" ? "runsc" : "runc";
  const hop = await containerEchoLatency({ runtime: same, rootfs, nodeDir: node, requests: 2000, warmup: 2000 });

  const burstSeconds = 3 * WEB_SECONDS;
  say(`web: ${BURST_CONNECTIONS} connections for ${burstSeconds} s at a web function with no container`);
  const containers = new Set<string>();
  const burst = await httpLoad({
    url: urls.cold,
    connections: BURST_CONNECTIONS,
    durationMs: burstSeconds * 1000,
    onAnswer: (status, body) => {
      if (status === 200) containers.add((JSON.parse(body) as { container: string }).container);
    },
  });
  await skiff.cli(["app", "stop", "skiff-bench-web"]);
  await skiff.settle();

  const rows: Row[] = [];
  for (const connections of WEB_CONNECTIONS) {
    const s = viaSkiff.get(connections)!;
    const h = plain.get(connections)!;
    const what = `web GET, ${connections} connection${connections === 1 ? "" : "s"}`;
    const floor = h.p50Ms + hop.p50Ms;
    rows.push(
      {
        what: `${what}, p50`,
        skiff: ms(s.p50Ms),
        baseline: `${ms(h.p50Ms)} plain Hono`,
        ratio: s.p50Ms / h.p50Ms,
        goal: runtime === "runc" ? { op: "≤", ratio: 1.5 } : undefined,
      },
      { what: `${what}, p99`, skiff: ms(s.p99Ms), baseline: `${ms(h.p99Ms)} plain Hono`, ratio: s.p99Ms / h.p99Ms },
      {
        what: `${what}, requests/s`,
        skiff: rate(s.perSec),
        baseline: `${rate(h.perSec)} plain Hono`,
        ratio: s.perSec / h.perSec,
        goal: runtime === "runc" ? { op: "≥", ratio: 0.5 } : undefined,
      },
      {
        what: `${what}, CPU per request: \`skiff up\` (gateway) + the container (runner and handler)`,
        skiff: `${us(s.cpuUs.up!)} + ${us(s.cpuUs.container!)}`,
        baseline: `${us(h.cpuUs.server!)} plain Hono server`,
        ratio: (s.cpuUs.up! + s.cpuUs.container!) / h.cpuUs.server!,
      },
      {
        what: `${what}, p50 vs plain Hono + a raw \`${same} run\` container hop`,
        skiff: ms(s.p50Ms),
        baseline: `${ms(floor)} floor (hop ${ms(hop.p50Ms)})`,
        ratio: s.p50Ms / floor,
        goal: runtime === "gvisor" ? { op: "≤", ratio: 1.5 } : undefined,
      },
    );
    const wrong = errorsOf(s) + errorsOf(h);
    if (wrong > 0) throw new Error(`${what}: ${wrong} requests failed: ${JSON.stringify({ skiff: s, plain: h })}`);
  }
  const refused = burst.statuses["503"] ?? 0;
  const errors = errorsOf(burst);
  const label = `${BURST_CONNECTIONS.toLocaleString("en-US")} connections for ${burstSeconds} s from zero containers`;
  rows.push(
    {
      what: `${label}: errors other than 503 (statuses ${JSON.stringify(burst.statuses)}${Object.keys(burst.failures).length > 0 ? `, no answer ${JSON.stringify(burst.failures)}` : ""})`,
      skiff: `${errors}`,
      baseline: `${refused.toLocaleString("en-US")} deliberate 503s`,
      check: { goal: "0", met: errors === 0 },
    },
    {
      what: `${label}: 200 answers, p50 / p99`,
      skiff: `${ms(burst.p50Ms)} / ${ms(burst.p99Ms)}`,
      baseline: `${burst.ok.toLocaleString("en-US")} answers, ${rate(burst.perSec)}`,
    },
    { what: `${label}: containers that answered`, skiff: `${containers.size}` },
  );
  return rows;
}

/** Requests that got no answer, or an answer other than 200 and a deliberate 503. */
function errorsOf(load: LoadResult): number {
  const statuses = Object.entries(load.statuses).filter(([status]) => status !== "200" && status !== "503");
  return [...statuses, ...Object.entries(load.failures)].reduce((sum, [, count]) => sum + count, 0);
}

/** Waits until a GET of `url` is answered 200 (a web function's first container is up). */
async function untilAnswered(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await fetch(url).catch(() => undefined);
    await response?.body?.cancel();
    if (response?.status === 200) return;
    if (Date.now() > deadline) throw new Error(`${url} answered ${response?.status ?? "nothing"} for ${timeoutMs} ms`);
    await sleep(250);
  }
}

/** Deployed-app figures: a burst on a cold function, and a class method cold and warm. */
async function scaleRows(
  skiff: SkiffStack,
  runtime: "gvisor" | "runc",
  redis: { port: number },
  rootfs: string,
  node: string,
): Promise<Row[]> {
  say("burst: 200 calls of 100 ms on a cold function (up to 4 containers), then BullMQ c=4");
  const burst = await skiff.run<{ ms: number; containers: number }>("burst", { n: 200, ms: 100 });
  await skiff.settle();
  const bull = await bullmqThroughput({
    jobs: 200,
    concurrency: 4,
    jobMs: 100,
    connection: { host: "127.0.0.1", port: redis.port },
  });
  const same = runtime === "gvisor" ? "runsc" : "runc";
  const start = await rawContainerStart({ runtime: same, rootfs, nodeDir: node, runs: 3 });
  const floor = start.p50Ms + (200 * 100) / 4;
  say("class method: cold on a new parameter set, then warm beside a function");
  const cls = await skiff.run<{ coldMs: number; warmMs: number; functionWarmMs: number }>("classLatency", {
    samples: 3,
    n: 500,
  });
  await skiff.settle();
  return [
    {
      what: `burst of 200 × 100 ms on a cold function, ${burst.containers} containers`,
      skiff: ms(burst.ms),
      baseline: `${ms(floor)} floor (one \`${same} run\` + 200 × 100 ms / 4)`,
      ratio: burst.ms / floor,
    },
    {
      what: "burst of 200 × 100 ms vs BullMQ c=4 (warm workers, no isolation)",
      skiff: ms(burst.ms),
      baseline: `${ms(bull.totalMs)} BullMQ`,
      ratio: burst.ms / bull.totalMs,
    },
    {
      what: `class method, first call on a new pool (cold, enter hook), ${runtime}`,
      skiff: ms(cls.coldMs),
      baseline: `${ms(cls.warmMs)} warm`,
      ratio: cls.coldMs / cls.warmMs,
    },
    {
      what: "class method, warm p50",
      skiff: ms(cls.warmMs),
      baseline: `${ms(cls.functionWarmMs)} function, warm`,
      ratio: cls.warmMs / cls.functionWarmMs,
    },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runtime: { type: "string", default: "gvisor" },
      store: { type: "string", default: "pglite" },
      only: { type: "string", default: SECTIONS.join(",") },
    },
  });
  if (!(WEB_SECONDS > 0))
    throw new Error(`SKIFF_BENCH_WEB_SECONDS must be a number of seconds above 0, not ${WEB_SECONDS}`);
  const runtime = values.runtime;
  if (runtime !== "gvisor" && runtime !== "runc") throw new Error(`--runtime must be gvisor or runc, not ${runtime}`);
  const store = values.store;
  if (store !== "pglite" && store !== "postgres") throw new Error(`--store must be pglite or postgres, not ${store}`);
  const only = new Set(values.only.split(",").filter(Boolean) as Section[]);
  const unknown = [...only].filter((section) => !SECTIONS.includes(section));
  if (unknown.length > 0) throw new Error(`--only takes ${SECTIONS.join(", ")}; not ${unknown.join(", ")}`);
  const started = Date.now();
  const services: Service[] = [];
  const stopAll = async () => {
    for (const service of services.splice(0).reverse()) await service.stop().catch(() => {});
  };
  const onSignal = () => void stopAll().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let rows: Row[];
  try {
    rows = await bench(runtime, store, services, only);
  } finally {
    await stopAll();
  }
  const result = table(rows);
  const met = rows.filter((r) => goalMet(r) === true).length;
  const goals = rows.filter((r) => goalMet(r) !== undefined).length;
  // A partial run keeps its own section, beside the full run's.
  const partial = only.size < SECTIONS.length ? [...only].join(",") : "";
  const onPostgres = store === "postgres";
  const key = [runtime, ...(onPostgres ? ["postgres"] : []), ...(partial ? partial.split(",") : [])].join("-");
  const section = [
    `## ${runtime}${onPostgres ? ", store on PostgreSQL" : ""}${partial ? ` (only ${partial})` : ""}`,
    "",
    `- command: \`${process.env.SKIFF_BENCH_WEB_SECONDS && only.has("web") ? `SKIFF_BENCH_WEB_SECONDS=${WEB_SECONDS} ` : ""}node dist/bench.mjs --runtime ${runtime}${onPostgres ? " --store postgres" : ""}${partial ? ` --only ${partial}` : ""}\` (\`make bench\` runs everything on gvisor with the embedded PGlite store), ${((Date.now() - started) / 1000).toFixed(0)} s`,
    `- date: ${new Date().toISOString()}`,
    `- machine: ${machine()}`,
    `- code: ${await revision()}; runtimes: ${await versions()}`,
    "",
    result,
    "",
    `Goals met: ${met} of ${goals}.`,
    "",
    HOW,
  ].join("\n");
  console.log(`\n${result}\n\ngoals met: ${met} of ${goals}`);
  for (const row of rows.filter((r) => goalMet(r) === false)) {
    const goal = row.goal ? `${row.goal.op} ${row.goal.ratio}×, got ${row.ratio?.toFixed(2)}×` : row.check?.goal;
    console.log(`missed: ${row.what}: ${row.skiff ?? ""} against ${row.baseline ?? "the goal"} (goal ${goal})`);
  }
  await writeResults(join(ROOT, "bench", "RESULTS.md"), key, section);
  say(`wrote bench/RESULTS.md in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});

/** The bench app's bundle as the CLI wrote it under SKIFF_HOME, copied to a directory of its own as bundle.mjs. */
async function latestBundle(home: string): Promise<string> {
  const dir = join(home, "bundles");
  const files = (await readdir(dir)).filter((name) => name.endsWith(".mjs"));
  const stats = await Promise.all(files.map(async (name) => ({ name, at: (await stat(join(dir, name))).mtimeMs })));
  const newest = stats.sort((a, b) => b.at - a.at)[0];
  if (!newest) throw new Error(`no bundle under ${dir}: did the bench app run?`);
  const out = await mkdtemp(join(tmpdir(), "skiff-bench-bundle-"));
  await copyFile(join(dir, newest.name), join(out, "bundle.mjs"));
  return out;
}
