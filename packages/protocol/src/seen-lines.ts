import type { LogLine } from "./messages/shared.js";

/**
 * The highest log line number had from each container: a worker resends the batches the server had not
 * acknowledged, and a server resends its recent lines to a watcher that reconnects, so whoever receives
 * lines drops those it already has by their number. Lines without a number always pass.
 */
export class SeenLines {
  private readonly last = new Map<string, { seq: number; at: number }>();

  /** The lines not had before, noting them as had. */
  fresh(lines: LogLine[], now = Date.now()): LogLine[] {
    return lines.filter((line) => {
      if (line.seq === undefined) return true;
      const last = this.last.get(line.containerId);
      if (last && line.seq <= last.seq) return false;
      this.last.set(line.containerId, { seq: line.seq, at: now });
      return true;
    });
  }

  /** Forgets the containers not heard from since `time`: their resent lines would have come by now. */
  forgetBefore(time: number): void {
    for (const [containerId, last] of this.last) if (last.at < time) this.last.delete(containerId);
  }
}
