import type { GeneratorItem, Result } from "@skiff/protocol";
import { REQUEST_ID_HEADER } from "@skiff/protocol/constants";
import { describe, expect, it } from "vitest";
import { encodeValue } from "./codec.js";
import { GeneratorStream, type StreamClient } from "./generator-stream.js";
import { RemoteGenerator } from "./remote-generator.js";
import { streamResponse } from "./web/stream-response.js";

const CALL = "00000000-0000-4000-8000-000000000002";

/** A generator call the test pushes values into, counting the cancels its iterator sends. */
function fakeCall() {
  let items: ((items: GeneratorItem[]) => void) | undefined;
  let results: ((results: Result[]) => void) | undefined;
  const client = {
    onItems: (_callId: string, handler: (items: GeneratorItem[]) => void) => {
      items = handler;
      return () => {
        items = undefined;
      };
    },
    onResults: (_callId: string, handler: (results: Result[]) => void) => {
      results = handler;
      return () => {
        results = undefined;
      };
    },
    send: async () => {},
    getBlob: async () => new Uint8Array(),
  } as unknown as StreamClient;
  const fake = {
    starts: 0,
    cancels: 0,
    listening: () => items !== undefined || results !== undefined,
    push: (...values: [number, unknown][]) =>
      items?.(values.map(([index, value]) => ({ index, data: { inline: encodeValue(value) } }))),
    end: (count: number) => results?.([{ idx: 0, status: "success", data: { inline: encodeValue(count) } }]),
    generator: () =>
      new RemoteGenerator<unknown>(async () => {
        fake.starts++;
        return {
          stream: new GeneratorStream(client, CALL),
          cancel: async () => {
            fake.cancels++;
          },
        };
      }),
  };
  return fake;
}

/** Lets the call start (it is submitted at the first next()) and what is pending run. */
const settled = () => new Promise((resolve) => setTimeout(resolve, 10));

/** `promise`, or a failure if it takes over `ms`: an early stop must not wait for the generator's next value. */
function within<T>(promise: Promise<T>, ms = 1000): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms)),
  ]);
}

describe("RemoteGenerator", () => {
  it("cancels the call at once when the caller stops while the generator is between values", async () => {
    const fake = fakeCall();
    const values = fake.generator();
    const first = values.next();
    await settled();
    fake.push([0, "a"]);
    expect(await first).toEqual({ done: false, value: "a" });
    const second = values.next(); // the remote generator sleeps: no value comes
    await settled();
    expect(await within(values.return())).toEqual({ done: true, value: undefined });
    expect(fake.cancels).toBe(1);
    expect(await within(second)).toEqual({ done: true, value: undefined });
    expect(fake.listening()).toBe(false);
    // Stopped for good: later calls neither wait nor cancel again.
    expect(await values.next()).toEqual({ done: true, value: undefined });
    await values.return();
    await expect(values.throw(new Error("late"))).rejects.toThrow("late");
    expect(fake.cancels).toBe(1);
  });

  it("cancels on a break in `for await`, not when the generator ended by itself", async () => {
    const broken = fakeCall();
    const iterable = broken.generator();
    const pushing = setTimeout(() => broken.push([0, "a"], [1, "b"]), 10);
    for await (const value of iterable) {
      expect(value).toBe("a");
      break;
    }
    clearTimeout(pushing);
    expect(broken.cancels).toBe(1);

    const ended = fakeCall();
    const values = ended.generator();
    const got: unknown[] = [];
    const draining = (async () => {
      for await (const value of values) got.push(value);
    })();
    await settled();
    ended.push([0, 1], [1, 2]);
    ended.end(2);
    await draining;
    expect(got).toEqual([1, 2]);
    expect(ended.cancels).toBe(0);
    expect(ended.listening()).toBe(false);
  });

  it("answers next() calls in order, and throws a stream's error after cancelling the call", async () => {
    const fake = fakeCall();
    const values = fake.generator();
    const asked = [values.next(), values.next(), values.next()];
    await settled();
    fake.push([0, "a"], [2, "c"]); // value 1 was lost
    expect(await asked[0]).toEqual({ done: false, value: "a" });
    await expect(asked[1]).rejects.toThrow(/values 1 to 1 of the generator were lost/);
    expect(await asked[2]).toEqual({ done: true, value: undefined });
    expect(fake.cancels).toBe(1);
  });

  it("starts nothing until the first next(), and sends nothing when stopped before", async () => {
    const fake = fakeCall();
    const values = fake.generator();
    await values.return();
    expect(await values.next()).toEqual({ done: true, value: undefined });
    expect([fake.starts, fake.cancels]).toEqual([0, 0]);

    const refused = new RemoteGenerator(async () => {
      throw new Error("not a generator");
    });
    await expect(refused.next()).rejects.toThrow("not a generator");
    expect(await refused.next()).toEqual({ done: true, value: undefined });
  });

  it("is cancelled at once when an HTTP client leaves a streamed response between two values", async () => {
    const fake = fakeCall();
    const request = new Request("http://x/", { headers: { [REQUEST_ID_HEADER]: "rq-1" } });
    const reader = streamResponse(fake.generator(), request).body!.getReader();
    const first = reader.read();
    await settled();
    fake.push([0, { token: "a" }]);
    expect(new TextDecoder().decode((await first).value)).toBe('data: {"token":"a"}\n\n');
    void reader.read(); // the response's writer asks for the next value: none comes
    await settled();
    await within(reader.cancel());
    expect(fake.cancels).toBe(1);
  });
});
