import { randomUUID } from "node:crypto";
import { Queue, Worker } from "bullmq";
import { isMain } from "./stats.js";

/** Options for {@link bullmqThroughput}. */
export interface BullmqOptions {
  /** No-op jobs to run. */
  jobs?: number;
  /** Concurrency of the single Worker. */
  concurrency?: number;
  /** Redis to use. */
  connection?: { host: string; port: number };
  /** How long each job sleeps (default 0: a no-op). */
  jobMs?: number;
}

/**
 * Throughput of BullMQ on local Redis: `jobs` no-op jobs added with `addBulk` in chunks of 1000 to a
 * fresh uniquely named queue, processed by one Worker in this process. Timed from the first add to the
 * last completion; the queue is obliterated and every connection closed afterwards.
 */
export async function bullmqThroughput({
  jobs = 10_000,
  concurrency = 16,
  connection = { host: "127.0.0.1", port: 6379 },
  jobMs = 0,
}: BullmqOptions = {}): Promise<{ jobsPerSec: number; totalMs: number }> {
  const name = `bench-${randomUUID()}`;
  const queue = new Queue(name, { connection });
  let worker: Worker | undefined;
  try {
    await queue.waitUntilReady();
    let completed = 0;
    let onDone!: () => void;
    let onFail!: (err: Error) => void;
    const done = new Promise<void>((resolve, reject) => {
      onDone = resolve;
      onFail = reject;
    });
    const job = jobMs > 0 ? () => new Promise<void>((resolve) => setTimeout(resolve, jobMs)) : async () => {};
    worker = new Worker(name, job, { connection, concurrency, autorun: false });
    worker.on("completed", () => {
      if (++completed === jobs) onDone();
    });
    worker.on("failed", (_job, err) => onFail(err));
    worker.on("error", onFail);
    await worker.waitUntilReady();
    void worker.run().catch(onFail);

    const start = process.hrtime.bigint();
    for (let i = 0; i < jobs; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ name: "noop", data: { i: i + j } }));
      await queue.addBulk(chunk);
    }
    await done;
    const totalMs = Number(process.hrtime.bigint() - start) / 1e6;
    return { jobsPerSec: (jobs / totalMs) * 1000, totalMs };
  } finally {
    await worker?.close();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
  }
}

if (isMain(import.meta.url)) {
  for (const concurrency of [16, 64]) {
    console.log(`concurrency ${concurrency}`, await bullmqThroughput({ concurrency }));
  }
}
