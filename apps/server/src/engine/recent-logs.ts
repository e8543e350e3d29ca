import { type LogLine, SeenLines } from "@skiff/protocol";

/** How long an app's lines are kept for watchers that reconnect (a server restart takes seconds). */
const KEEP_MS = 60_000;
/** At most this much of an app's recent lines is kept (characters), whatever their age. */
const KEEP_CHARS_PER_APP = 1024 * 1024;
/** A container not heard from this long is forgotten: its resent lines would have come by now. */
const FORGET_CONTAINER_MS = 10 * 60_000;

interface Chunk {
  at: number;
  lines: LogLine[];
  chars: number;
}

/**
 * Container log lines as the server received them: drops a line it already has (a worker resends the
 * batches the server had not acknowledged when the connection dropped, numbered per container), and
 * keeps each app's last minute for a watcher that reconnects, which drops the lines it already had.
 */
export class RecentLogs {
  private readonly apps = new Map<string, { chunks: Chunk[]; chars: number }>();
  private readonly seen = new SeenLines();
  private prunedAt = Number.NEGATIVE_INFINITY;
  private containersPrunedAt = 0;

  /** The lines not seen before, which it keeps. */
  add(lines: LogLine[], now = Date.now()): LogLine[] {
    this.prune(now);
    const fresh = this.seen.fresh(lines, now);
    for (const line of fresh) {
      let app = this.apps.get(line.appId);
      if (!app) {
        app = { chunks: [], chars: 0 };
        this.apps.set(line.appId, app);
      }
      let chunk = app.chunks.at(-1);
      if (chunk?.at !== now) {
        chunk = { at: now, lines: [], chars: 0 };
        app.chunks.push(chunk);
      }
      chunk.lines.push(line);
      chunk.chars += line.line.length;
      app.chars += line.line.length;
      while (app.chars > KEEP_CHARS_PER_APP && app.chunks.length > 1) app.chars -= app.chunks.shift()!.chars;
    }
    return fresh;
  }

  /** An app's lines of the last minute, oldest first. */
  of(appId: string, now = Date.now()): LogLine[] {
    this.prune(now);
    return this.apps.get(appId)?.chunks.flatMap((chunk) => chunk.lines) ?? [];
  }

  /** Forgets what is past keeping; at most once a second, as lines arrive many times a second. */
  private prune(now: number): void {
    if (now - this.prunedAt < 1000) return;
    this.prunedAt = now;
    for (const [appId, app] of this.apps) {
      while (app.chunks[0] && app.chunks[0].at < now - KEEP_MS) app.chars -= app.chunks.shift()!.chars;
      if (app.chunks.length === 0) this.apps.delete(appId);
    }
    if (now - this.containersPrunedAt < KEEP_MS) return;
    this.containersPrunedAt = now;
    this.seen.forgetBefore(now - FORGET_CONTAINER_MS);
  }
}
