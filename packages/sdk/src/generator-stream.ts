import type { GeneratorItem, Result } from "@skiff/protocol";
import { GENERATOR_WINDOW, GENERATOR_WINDOW_BYTES } from "@skiff/protocol/constants";
import type { Client } from "./client.js";
import { SkiffError } from "./errors.js";
import { fromPayload, settle } from "./payload.js";

/** What a stream needs of the client: a generator call's pushed values and result, and acknowledgements. */
export type StreamClient = Pick<Client, "onItems" | "onResults" | "send" | "getBlob">;

/**
 * The caller's side of one generator call (`.remoteGen`): the values the server pushes, in order, then the
 * result that ends them (the count of values, or the generator's error). Values are acknowledged as the
 * caller takes them, which lets the generator run further (backpressure): every GENERATOR_WINDOW / 2 values
 * or GENERATOR_WINDOW_BYTES / 2 bytes, and whenever the caller has taken every value it has, so a
 * generator paused by the window always hears that its values were taken.
 * Values are not kept anywhere: one missing (pushed while the connection was down) ends the stream with
 * an error, never a silent truncation.
 */
export class GeneratorStream {
  private readonly items = new Map<number, GeneratorItem>();
  private result: Result | undefined;
  private failure: unknown;
  private closed = false;
  private taken = 0;
  private acked = 0;
  /** Inline bytes of the values taken since the last acknowledgement. */
  private takenBytes = 0;
  /** An acknowledgement the server has not answered yet: the next one waits for it (see acknowledge). */
  private acking = false;
  /** An acknowledgement was due while one was out: send it once that one is answered. */
  private due = false;
  private wake: (() => void) | undefined;
  private readonly off: (() => void)[];

  constructor(
    private readonly client: StreamClient,
    private readonly callId: string,
  ) {
    this.off = [
      client.onItems(callId, (items) => {
        // Pushed once each; a stray duplicate is dropped by its index.
        for (const item of items) if (item.index >= this.taken) this.items.set(item.index, item);
        this.wake?.();
      }),
      client.onResults(callId, (results) => {
        this.result ??= results.find((result) => result.idx <= 0);
        this.wake?.();
      }),
    ];
  }

  /** The submit was refused (or could not be sent): the stream ends with that error. */
  fail(error: unknown): void {
    this.failure ??= error;
    this.wake?.();
  }

  /**
   * The next value, or done once the generator returned (or the stream was closed, even while this
   * waited); throws the generator's error after its values.
   */
  async next(): Promise<IteratorResult<unknown, undefined>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const item = this.items.get(this.taken);
      if (item) {
        this.items.delete(this.taken);
        this.taken++;
        this.takenBytes += "inline" in item.data ? item.data.inline.length : 0;
        if (this.taken - this.acked >= GENERATOR_WINDOW / 2 || this.takenBytes >= GENERATOR_WINDOW_BYTES / 2)
          this.acknowledge();
        return { done: false, value: await fromPayload(this.client as Client, item.data) };
      }
      // Values come in order on one connection, each before the result: a later one without this one
      // means this one was pushed while the connection was down.
      if (this.items.size > 0) throw this.lost(Math.min(...this.items.keys()));
      if (this.result) return this.end(this.result);
      if (this.failure) throw this.failure;
      // Everything that came was taken: say so before waiting (the generator may be waiting for it).
      if (this.taken > this.acked) this.acknowledge();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  /** Stops listening (the caller's loop ended); a `next()` waiting for a value ends. */
  close(): void {
    this.closed = true;
    for (const off of this.off) off();
    this.wake?.();
  }

  private async end(result: Result): Promise<IteratorResult<unknown, undefined>> {
    if (result.idx < 0) throw new SkiffError(result.code ?? "UNAVAILABLE", "lost the connection to the server");
    const settled = await settle(this.client as Client, result);
    if (!settled.ok) throw settled.error;
    const count = settled.value;
    if (typeof count === "number" && count > this.taken) throw this.lost(count);
    return { done: true, value: undefined };
  }

  private lost(upTo: number): SkiffError {
    return new SkiffError(
      "UNAVAILABLE",
      `values ${this.taken} to ${upTo - 1} of the generator were lost while the connection to the server was down (a generator's values are not kept, and it is not run again once it has yielded): call .remoteGen again`,
    );
  }

  /**
   * Tells the server how many values the caller took: the generator may run ahead again. One at a time: a
   * caller faster than its generator would otherwise send one per value; what it took meanwhile goes in
   * the next, sent when this one is answered.
   */
  private acknowledge(): void {
    if (this.acking) {
      this.due = true;
      return;
    }
    this.acking = true;
    this.due = false;
    this.acked = this.taken;
    this.takenBytes = 0;
    void this.client
      .send({ t: "gen-ack", callId: this.callId, consumed: this.taken })
      .catch(() => {})
      .finally(() => {
        this.acking = false;
        if (this.due && this.taken > this.acked && !this.closed) this.acknowledge();
      });
  }
}
