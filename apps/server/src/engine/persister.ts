import type { InputChunk, ProgressRecord, ResultRecord, Store, WriteBatch } from "@skiff/store";

/** Statement parameters per write, far below Postgres's 65,535. */
const MAX_PARAMS = 20_000;
/**
 * Writes start at most this often. A statement's fixed cost (about 0.3 ms on PGlite) dwarfs a row's,
 * so under load each write carries the last few milliseconds of work; when idle a write starts at once.
 */
const MIN_WRITE_INTERVAL_MS = 5;
const RETRIES_BEFORE_SPLIT = 6;

interface Pending {
  kind: keyof WriteBatch;
  item: InputChunk & ResultRecord & ProgressRecord & string;
  done: (newChunk: boolean) => void;
}

/**
 * Writes the engine's changes behind it, in order and in as few statements as possible: whatever queued
 * while one write ran goes into the next. A write's promise resolves once it is durable, which is when a
 * submit is acknowledged and a worker's outputs are confirmed; the hot path itself never waits for it.
 */
export class Persister {
  private queue: Pending[] = [];
  private running: Promise<void> | undefined;
  /** The promise of the last write queued: writes finish in order, so it settles after all the others. */
  private last: Promise<unknown> = Promise.resolve();
  private lastWrite = 0;

  constructor(
    private readonly store: Store,
    /** Told about each failed write, and whether its record is given up on. */
    private readonly onError: (error: unknown, attempt: number, dropped: boolean) => void,
  ) {}

  /** Resolves with whether the chunk was new (false: a resend of one already written). */
  chunk(chunk: InputChunk): Promise<boolean> {
    return this.enqueue("chunks", chunk);
  }

  result(record: ResultRecord): Promise<void> {
    return this.enqueue("results", record).then(() => undefined);
  }

  progress(record: ProgressRecord): Promise<void> {
    return this.enqueue("progress", record).then(() => undefined);
  }

  finishedCall(callId: string): Promise<void> {
    return this.enqueue("finishedCalls", callId).then(() => undefined);
  }

  /** Resolves once everything queued before it is durable (not waiting for what is queued after). */
  flushed(): Promise<void> {
    return this.last.then(() => undefined);
  }

  private enqueue(kind: keyof WriteBatch, item: unknown): Promise<boolean> {
    const written = new Promise<boolean>((done) => {
      this.queue.push({ kind, item: item as Pending["item"], done });
      this.running ??= this.run();
    });
    this.last = written;
    return written;
  }

  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      // Let the rest of this turn's work (a dispatch, a push to a caller) go out before the write, and
      // gather more while the last write is recent.
      const wait = this.lastWrite + MIN_WRITE_INTERVAL_MS - Date.now();
      await new Promise((resolve) => (wait > 0 ? setTimeout(resolve, wait) : setImmediate(resolve)));
      this.lastWrite = Date.now();
      await this.write(this.take());
    }
    this.running = undefined;
  }

  /**
   * Writes `taken` and resolves its promises. A write that keeps failing is retried (the store may be
   * restarting); after RETRIES_BEFORE_SPLIT tries it is split, so that one bad record cannot hold back
   * the others, and a single record that still fails is given up on, loudly.
   */
  private async write(taken: Pending[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const fresh = await this.store.calls.persist(batchOf(taken));
        const isNew = new Set(fresh.map((c) => `${c.callId}/${c.firstIdx}`));
        for (const { kind, item, done } of taken)
          done(kind !== "chunks" || isNew.has(`${item.callId}/${item.firstIdx}`));
        return;
      } catch (error) {
        this.onError(error, attempt, attempt >= RETRIES_BEFORE_SPLIT && taken.length === 1);
        if (attempt >= RETRIES_BEFORE_SPLIT) {
          if (taken.length === 1) return taken[0]!.done(false);
          const half = Math.ceil(taken.length / 2);
          await this.write(taken.slice(0, half));
          await this.write(taken.slice(half));
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 5000)));
      }
    }
  }

  /** The oldest queued writes that fit one statement's parameters. */
  private take(): Pending[] {
    let params = 0;
    let count = 0;
    for (const { kind } of this.queue) {
      params += kind === "chunks" ? 8 : kind === "results" ? 3 : kind === "progress" ? 0 : 1;
      if (count > 0 && params > MAX_PARAMS) break;
      count++;
    }
    return this.queue.splice(0, count);
  }
}

/** The store's batch for these writes, in order: a call whose last word here is "finished" is finished. */
function batchOf(taken: Pending[]): WriteBatch {
  const batch: WriteBatch = { chunks: [], results: [], progress: [], finishedCalls: [] };
  const finished = new Map<string, boolean>();
  for (const { kind, item } of taken) {
    if (kind === "finishedCalls") finished.set(item, true);
    else if (kind === "chunks") finished.set(item.callId, false);
    if (kind !== "finishedCalls") (batch[kind] as unknown[]).push(item);
  }
  for (const [callId, done] of finished) if (done) batch.finishedCalls.push(callId);
  return batch;
}
