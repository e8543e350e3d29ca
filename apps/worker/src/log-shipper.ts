import { batchesOf, type LogLine } from "@skiff/protocol";

/** The most text one batch carries (lines are at most MAX_LINE long, so a batch stays near this). */
export const LOG_BATCH_CHARS = 1024 * 1024;

/** Log lines sent to the server together, under one sequence number. */
export interface LogBatch {
  seq: number;
  lines: LogLine[];
}

/**
 * A worker's container logs on their way to the server. Each container's lines are numbered; batches
 * are kept until the server acknowledges them (`logs-recorded`) and go again on the next connection, so
 * a server that dies with lines in flight loses none, and whoever already has a line drops it by its
 * number. At most `maxLines` lines and `maxChars` of text are kept (sent and unacknowledged, or not sent
 * yet): past that the oldest go, and are counted.
 */
export class LogShipper {
  private pending: LogLine[] = [];
  /** Sent and not acknowledged, by seq; a Map iterates in insertion order, which is seq order. */
  private readonly unacknowledged = new Map<number, LogLine[]>();
  private readonly lineSeq = new Map<string, number>();
  private nextSeq = 1;
  private kept = 0;
  private keptChars = 0;
  /** Lines dropped since `takeDropped` was last called. */
  private dropped = 0;

  constructor(
    private readonly maxLines: number,
    private readonly maxChars = Number.POSITIVE_INFINITY,
  ) {}

  /** Queues a container's line, numbering it. */
  push(line: LogLine): void {
    const seq = (this.lineSeq.get(line.containerId) ?? 0) + 1;
    this.lineSeq.set(line.containerId, seq);
    this.pending.push({ ...line, seq });
    this.kept++;
    this.keptChars += line.line.length;
    while (this.kept > this.maxLines || this.keptChars > this.maxChars) this.dropOldest();
  }

  /** A container ended: its numbering goes (container ids are never reused). */
  forget(containerId: string): void {
    this.lineSeq.delete(containerId);
  }

  /**
   * The lines queued since the last call, as batches to send now (each up to LOG_BATCH_CHARS of text, or one
   * longer line), kept until acknowledged: a chatty container's lines go in several messages, each far below
   * a WebSocket message's limit.
   */
  take(): LogBatch[] {
    const batches = batchesOf(this.pending, (line) => line.line.length, LOG_BATCH_CHARS).map((lines) => {
      const batch = { seq: this.nextSeq++, lines };
      this.unacknowledged.set(batch.seq, lines);
      return batch;
    });
    this.pending = [];
    return batches;
  }

  /** Batches sent and not acknowledged, oldest first: to send again on a new connection. */
  unacknowledgedBatches(): LogBatch[] {
    return [...this.unacknowledged].map(([seq, lines]) => ({ seq, lines }));
  }

  /** The server has every batch up to `seq`. */
  acknowledged(seq: number): void {
    for (const [batchSeq, lines] of this.unacknowledged) {
      if (batchSeq > seq) break;
      this.kept -= lines.length;
      for (const line of lines) this.keptChars -= line.line.length;
      this.unacknowledged.delete(batchSeq);
    }
  }

  /** How many lines were dropped for want of room since the last call. */
  takeDropped(): number {
    const dropped = this.dropped;
    this.dropped = 0;
    return dropped;
  }

  private dropOldest(): void {
    const oldest = this.unacknowledged.entries().next();
    let dropped: LogLine | undefined;
    if (oldest.done) dropped = this.pending.shift();
    else {
      // A copy: the batch sent may still be read (an in-process server gets the very array).
      const [seq, lines] = oldest.value;
      dropped = lines[0];
      if (lines.length > 1) this.unacknowledged.set(seq, lines.slice(1));
      else this.unacknowledged.delete(seq);
    }
    this.kept--;
    this.keptChars -= dropped?.line.length ?? 0;
    this.dropped++;
  }
}
