import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { App, enter, method } from "skiff";
import { summarize } from "../baselines/stats.js";

/** The app of the bench's snapshot rows (`bench/run.ts`, section `snapshots`). */
export const app = new App("snapshot-bench");

const TABLE_MIB = 200;
const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const report = (result: object) => console.log(`BENCH_RESULT ${JSON.stringify(result)}`);

/** What a heavy `enter` hook does: 2 s of waiting (a download) and a 200 MiB table of pseudo-random numbers. */
async function loadTable(): Promise<Float64Array<ArrayBuffer>> {
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const table = new Float64Array((TABLE_MIB * 2 ** 20) / 8);
  let x = 2463534242;
  for (let i = 0; i < table.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    table[i] = (x >>> 0) / 3;
  }
  return table;
}

const options = { memory: "1GiB", scaledownWindow: 1 } as const;

export const Snapshotted = app.cls(
  { ...options, enableMemorySnapshot: true },
  class {
    table: Float64Array = new Float64Array(0);
    @enter({ snap: true }) async load() {
      this.table = await loadTable();
    }
    @method() size() {
      return this.table.length;
    }
  },
);

export const Booted = app.cls(
  options,
  class {
    table: Float64Array = new Float64Array(0);
    @enter() async load() {
      this.table = await loadTable();
    }
    @method() size() {
      return this.table.length;
    }
  },
);

/** The phases `skiff container list --phases` shows for the running container of `fn` (it stops 1 s after). */
async function phasesOf(fn: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [process.argv[1]!, "container", "list", "--phases"]);
  // Tab-separated when not on a terminal: id, app, function, version, state, worker, start; then the phases.
  const lines = stdout.split("\n");
  const row = lines.findIndex((line) => line.split("\t")[2] === fn);
  return row < 0 ? "" : `${lines[row]!.split("\t").pop()}: ${lines[row + 1]?.trim() ?? ""}`;
}

/** `n` calls, each on a new container (the last one stopped), and the phases of the last one's start. */
async function coldCalls(call: () => Promise<unknown>, fn: string, n: number) {
  const samples: number[] = [];
  let phases = "";
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const start = process.hrtime.bigint();
    await call();
    samples.push(elapsedMs(start));
    if (i === n - 1) phases = await phasesOf(fn);
  }
  return { p50: summarize(samples).p50, phases };
}

export const snapshots = app.localEntrypoint(async ({ n = 3 }: { n?: number }) => {
  const start = process.hrtime.bigint();
  await Snapshotted.size.remote();
  const takeMs = elapsedMs(start);
  const takePhases = await phasesOf("Snapshotted");
  const restored = await coldCalls(() => Snapshotted.size.remote(), "Snapshotted", n);
  const booted = await coldCalls(() => Booted.size.remote(), "Booted", n);
  report({ takeMs, takePhases, restored, booted });
});
