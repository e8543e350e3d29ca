import type { Result } from "@skiff/protocol";
import { type Duration, parseDuration } from "@skiff/protocol/units";
import type { Client } from "./client.js";
import { clientFromEnvironment } from "./connect.js";
import { CallError } from "./errors.js";
import { settle } from "./payload.js";

/**
 * A call started with `.spawn()`: get its result later, from this process or another.
 * @example
 * const call = await square.spawn(3);
 * console.log(await call.get({ timeout: "30s" }));
 */
export class FunctionCall<R = unknown> {
  constructor(
    /** The call's id; pass it to `FunctionCall.fromId` elsewhere. */
    readonly objectId: string,
    private readonly client: Client,
  ) {}

  /** A call spawned elsewhere, by its id. */
  static async fromId<R = unknown>(callId: string): Promise<FunctionCall<R>> {
    return new FunctionCall<R>(callId, await clientFromEnvironment());
  }

  /** Waits for the result; throws the function's exception, or a TimeoutError after `timeout`. */
  async get(options: { timeout?: Duration } = {}): Promise<R> {
    const result = await waitForResult(this.client, this.objectId, { timeout: options.timeout, subscribe: true });
    const settled = await settle(this.client, result);
    if (!settled.ok) throw settled.error;
    return settled.value as R;
  }

  /** Cancels the call: a running attempt is killed, and `get()` throws a CancelledError. */
  async cancel(): Promise<void> {
    await this.client.send({ t: "cancel", callId: this.objectId });
  }
}

/** Resolves with the result of a single-input call (index 0). */
export async function waitForResult(
  client: Client,
  callId: string,
  options: { timeout?: Duration | undefined; subscribe: boolean },
): Promise<Result> {
  let off: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<Result>((resolve, reject) => {
      off = client.onResults(callId, (results) => {
        const first = results.find((r) => r.idx <= 0);
        if (first) resolve(first);
      });
      if (options.timeout !== undefined) {
        const ms = parseDuration(options.timeout, "timeout");
        timer = setTimeout(
          () => reject(new CallError("TIMEOUT", `the call did not finish within ${ms} ms; it keeps running`)),
          ms,
        );
      }
      if (options.subscribe) client.send({ t: "subscribe", callId, fromIdx: 0 }).catch(reject);
    });
  } finally {
    off?.();
    if (timer) clearTimeout(timer);
  }
}
