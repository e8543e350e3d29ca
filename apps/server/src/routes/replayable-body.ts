import type { Readable, Writable } from "node:stream";

/** Up to this many bytes of a request body are kept, to send again should the first container be gone. */
const REPLAY_LIMIT = 64 * 1024;

/**
 * A request body streamed to one upstream request at a time, with backpressure (never held whole). Its
 * first REPLAY_LIMIT bytes are kept, so that a request the first container could not take (the relay
 * answered "gone") can go to another one; past that, `replayable` is false.
 */
export class ReplayableBody {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private ended = false;
  private target: Writable | undefined;

  /** `hasBody` false: a request without a body (most GETs), whose stream is left alone. */
  constructor(
    private readonly source: Readable,
    hasBody = true,
  ) {
    if (!hasBody) {
      this.ended = true;
      return;
    }
    source.on("data", (chunk: Buffer) => this.onData(chunk));
    source.on("end", () => {
      this.ended = true;
      this.target?.end();
    });
    // Nothing flows until there is somewhere to send it.
    source.pause();
  }

  /** Whether all of what was read so far is kept, to send to another upstream. */
  get replayable(): boolean {
    return this.keptBytes <= REPLAY_LIMIT;
  }

  /** Streams the body to `target`: what was read already, then the rest as it comes. */
  sendTo(target: Writable): void {
    this.target = target;
    for (const chunk of this.kept) target.write(chunk);
    if (this.ended) target.end();
    else this.source.resume();
  }

  /** Stops sending to the current target (it is abandoned for another). */
  detach(): void {
    this.target = undefined;
    if (!this.ended) this.source.pause();
  }

  private onData(chunk: Buffer): void {
    if (this.replayable) {
      this.keptBytes += chunk.length;
      if (this.replayable) this.kept.push(chunk);
      else this.kept.length = 0;
    }
    const target = this.target;
    if (!target || target.write(chunk)) return;
    this.source.pause();
    target.once("drain", () => {
      if (this.target === target) this.source.resume();
    });
  }
}
