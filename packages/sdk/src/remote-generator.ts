import type { GeneratorStream } from "./generator-stream.js";

/** A generator call once submitted: the values it streams, and how to cancel it in its container. */
export interface StartedGeneratorCall {
  stream: Pick<GeneratorStream, "next" | "close">;
  cancel(): Promise<void>;
}

const DONE = { done: true, value: undefined } as const;

/**
 * The iterator of a `.remoteGen` call, written by hand rather than as an `async function*`: a generator's
 * `return()` waits behind its pending `next()`, so a caller that stops while the remote generator is
 * between two values (an HTTP client leaving a streamed response, a race with a timeout) would cancel it
 * only once its next value came, if ever. Here `return()` and `throw()` cancel the call at once, and a
 * pending `next()` ends (done). The call is submitted at the first `next()`, as a generator's body would
 * start; `next()` calls are answered in order. Leaving early (`break`, `return`, a throw in the loop)
 * cancels the call; so does an error of the stream (values lost), since the call may still be running.
 */
export class RemoteGenerator<T> implements AsyncGenerator<T, void, undefined> {
  private call: Promise<StartedGeneratorCall> | undefined;
  private stopped = false;
  /** The last `next()` asked for: each waits for the one before. */
  private pending: Promise<unknown> = Promise.resolve();

  constructor(private readonly start: () => Promise<StartedGeneratorCall>) {}

  next(): Promise<IteratorResult<T, void>> {
    const step = this.pending.then(() => this.step());
    this.pending = step.catch(() => {});
    return step;
  }

  async return(): Promise<IteratorResult<T, void>> {
    await this.stop(true);
    return DONE;
  }

  async throw(error: unknown): Promise<IteratorResult<T, void>> {
    await this.stop(true);
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async step(): Promise<IteratorResult<T, void>> {
    if (this.stopped) return DONE;
    let call: StartedGeneratorCall;
    try {
      this.call ??= this.start();
      call = await this.call;
    } catch (error) {
      // Refused before anything ran (not a generator, no app): there is nothing to cancel.
      this.stopped = true;
      throw error;
    }
    try {
      const next = await call.stream.next();
      if (this.stopped) return DONE;
      if (next.done) await this.stop(false);
      return next.done ? DONE : { done: false, value: next.value as T };
    } catch (error) {
      if (this.stopped) return DONE;
      await this.stop(true);
      throw error;
    }
  }

  /** Ends the iteration: stops listening to the call and, unless it ended by itself, cancels it. */
  private async stop(cancel: boolean): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const call = await this.call?.catch(() => undefined);
    call?.stream.close();
    if (cancel) await call?.cancel();
  }
}
