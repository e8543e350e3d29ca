import type { ClientMessageInput, GeneratorItem, Result } from "@skiff/protocol";
import { GENERATOR_WINDOW, GENERATOR_WINDOW_BYTES } from "@skiff/protocol/constants";
import { describe, expect, it } from "vitest";
import { App, collectApp, manifestOf } from "./app.js";
import { method } from "./cls.js";
import { encodeValue } from "./codec.js";
import { SkiffError } from "./errors.js";
import { isAsyncGenerator, isAsyncGeneratorFunction } from "./generator.js";
import { GeneratorStream, type StreamClient } from "./generator-stream.js";

const CALL = "00000000-0000-4000-8000-000000000001";

/** A client the test pushes values and results through, recording what the stream sends. */
function fakeClient() {
  let items: ((items: GeneratorItem[]) => void) | undefined;
  let results: ((results: Result[]) => void) | undefined;
  const sent: ClientMessageInput[] = [];
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
    send: async (message: Omit<ClientMessageInput, "rid">) => {
      sent.push(message as ClientMessageInput);
    },
    getBlob: async () => new Uint8Array(),
  } as unknown as StreamClient;
  return {
    client,
    sent,
    push: (...values: [number, unknown][]) =>
      items?.(values.map(([index, value]) => ({ index, data: { inline: encodeValue(value) } }))),
    end: (count: number) => results?.([{ idx: 0, status: "success", data: { inline: encodeValue(count) } }]),
    fail: (error: Error) =>
      results?.([{ idx: 0, status: "failure", code: "USER_ERROR", data: { inline: encodeValue(error) } }]),
    listening: () => items !== undefined || results !== undefined,
  };
}

async function drain(stream: GeneratorStream): Promise<unknown[]> {
  const out: unknown[] = [];
  for (;;) {
    const next = await stream.next();
    if (next.done) return out;
    out.push(next.value);
  }
}

describe("GeneratorStream", () => {
  it("yields values in index order as they come, then ends on the result", async () => {
    const fake = fakeClient();
    const stream = new GeneratorStream(fake.client, CALL);
    const first = stream.next();
    fake.push([0, "a"]);
    expect(await first).toEqual({ done: false, value: "a" });
    fake.push([1, { b: new Map([[1, 2]]) }], [2, "c"]);
    fake.end(3);
    expect(await drain(stream)).toEqual([{ b: new Map([[1, 2]]) }, "c"]);
    stream.close();
    expect(fake.listening()).toBe(false);
  });

  it("throws the generator's error after the values it yielded", async () => {
    const fake = fakeClient();
    const stream = new GeneratorStream(fake.client, CALL);
    fake.push([0, 1], [1, 2]);
    const error = new TypeError("boom");
    fake.fail(error);
    expect(await stream.next()).toEqual({ done: false, value: 1 });
    expect(await stream.next()).toEqual({ done: false, value: 2 });
    await expect(stream.next()).rejects.toThrow(TypeError);
  });

  it("fails, never ends short, when values were pushed while the connection was down", async () => {
    const gap = fakeClient();
    const withGap = new GeneratorStream(gap.client, CALL);
    gap.push([0, "a"], [2, "c"]);
    expect(await withGap.next()).toEqual({ done: false, value: "a" });
    await expect(withGap.next()).rejects.toThrow(/values 1 to 1 of the generator were lost .* call \.remoteGen again/);

    const missingTail = fakeClient();
    const short = new GeneratorStream(missingTail.client, CALL);
    missingTail.push([0, "a"]);
    missingTail.end(3); // the result, replayed after a reconnect, counts values this caller never got
    expect(await short.next()).toEqual({ done: false, value: "a" });
    await expect(short.next()).rejects.toThrow(/values 1 to 2 of the generator were lost/);
  });

  it("acknowledges what the caller took every half window, so the generator may run further", async () => {
    const fake = fakeClient();
    const stream = new GeneratorStream(fake.client, CALL);
    const count = GENERATOR_WINDOW * 2;
    fake.push(...Array.from({ length: count }, (_, i): [number, unknown] => [i, i]));
    fake.end(count);
    expect(await drain(stream)).toHaveLength(count);
    expect(fake.sent).toEqual(
      [1, 2, 3, 4].map((n) => ({ t: "gen-ack", callId: CALL, consumed: (n * GENERATOR_WINDOW) / 2 })),
    );
  });

  it("acknowledges every half window of bytes, and whenever it has taken all that came", async () => {
    const fake = fakeClient();
    const stream = new GeneratorStream(fake.client, CALL);
    const half = new Uint8Array(GENERATOR_WINDOW_BYTES / 2);
    fake.push([0, half], [1, "small"]);
    await stream.next(); // half the window's bytes: acknowledged at once
    expect(fake.sent).toEqual([{ t: "gen-ack", callId: CALL, consumed: 1 }]);
    await stream.next();
    expect(fake.sent).toHaveLength(1);
    const waiting = stream.next(); // nothing left: what it took is acknowledged before it waits
    expect(fake.sent.at(-1)).toEqual({ t: "gen-ack", callId: CALL, consumed: 2 });
    fake.push([2, "c"]);
    await waiting;
    fake.end(3);
    await stream.next();
    expect(fake.sent).toHaveLength(2);
  });

  it("keeps one acknowledgement out at a time, and sends what was taken meanwhile when it is answered", async () => {
    const fake = fakeClient();
    const answers: (() => void)[] = [];
    (fake.client as { send: unknown }).send = (message: ClientMessageInput) => {
      fake.sent.push(message);
      return new Promise<void>((resolve) => answers.push(resolve));
    };
    const stream = new GeneratorStream(fake.client, CALL);
    fake.push([0, "a"]);
    await stream.next();
    const second = stream.next(); // drained: acknowledges 1
    fake.push([1, "b"]);
    await second;
    const third = stream.next(); // drained again, but the first is still out
    expect(fake.sent.map((m) => (m as { consumed: number }).consumed)).toEqual([1]);
    answers.shift()!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(fake.sent.map((m) => (m as { consumed: number }).consumed)).toEqual([1, 2]);
    fake.end(2);
    await expect(third).resolves.toEqual({ done: true, value: undefined });
  });

  it("ends with the refusal of its submit", async () => {
    const fake = fakeClient();
    const stream = new GeneratorStream(fake.client, CALL);
    const next = stream.next();
    stream.fail(new Error("refused"));
    await expect(next).rejects.toThrow("refused");
  });
});

describe("generator detection", () => {
  it("tells async generator functions and their generators from anything else", () => {
    async function* gen() {}
    const method = { async *m() {} }.m;
    expect([gen, method].map(isAsyncGeneratorFunction)).toEqual([true, true]);
    expect([async () => {}, function* sync() {}, () => gen(), undefined].map(isAsyncGeneratorFunction)).toEqual([
      false,
      false,
      false,
      false,
    ]);
    expect(isAsyncGenerator(gen())).toBe(true);
    expect(isAsyncGenerator({ [Symbol.asyncIterator]: () => ({}) })).toBe(false);
  });
});

describe("declaring generators", () => {
  it("records a generator function and a class's generator methods in the manifest", () => {
    const app = new App("g");
    const tokens = app.function(async function* (prompt: string) {
      yield prompt;
    });
    const plain = app.function(async (x: number) => x);
    const Model = app.cls(
      class {
        @method() async *stream() {
          yield 1;
        }
        @method() async once() {
          return 1;
        }
      },
    );
    const manifest = manifestOf(collectApp({ app, tokens, plain, Model }, "g.ts"), 22);
    const byName = new Map(manifest.functions.map((spec) => [spec.name, spec]));
    expect(byName.get("tokens")?.generator).toBe(true);
    expect(byName.get("plain")?.generator).toBeUndefined();
    expect(byName.get("Model")?.cls?.generators).toEqual(["stream"]);
    expect([tokens.isGenerator, plain.isGenerator, Model.stream.isGenerator, Model.once.isGenerator]).toEqual([
      true,
      false,
      true,
      false,
    ]);
  });

  it("refuses a plain call of a generator, and a generator call of a plain function, before anything is sent", async () => {
    const app = new App("g");
    const tokens = app.function(async function* () {
      yield 1;
    });
    const plain = app.function(async () => 1);
    await expect(tokens.remote()).rejects.toThrow(
      /is an async generator function: iterate its values .*not \.remote\(\)/,
    );
    await expect(tokens.spawn()).rejects.toThrow(/not \.spawn\(\)/);
    await expect(plain.remoteGen().next()).rejects.toThrow(/is not an async generator function: call it with \.remote/);
  });

  it("refuses .map, .starmap and .forEach of a generator where they are called, naming the method and .remoteGen", async () => {
    const app = new App("g");
    const tokens = app.function(async function* (x: number) {
      yield x;
    });
    const refusal = (method: string) =>
      new RegExp(
        `is an async generator function: iterate its values with .*\\.remoteGen\\(\\.\\.\\.args\\).*, not \\.${method}\\(\\); a generator's call takes one input: for many, iterate one \\.remoteGen per input`,
      );
    // Thrown by the call itself, before any input is read or anything is sent.
    let read = 0;
    const inputs = (function* () {
      read++;
      yield 1;
    })();
    expect(() => tokens.map(inputs)).toThrow(refusal("map"));
    expect(() => tokens.starmap([[1]])).toThrow(refusal("starmap"));
    await expect(tokens.forEach(inputs)).rejects.toThrow(refusal("forEach"));
    expect(read).toBe(0);
    const error = await tokens.forEach([1]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SkiffError);
    expect(error).toMatchObject({ code: "BAD_REQUEST" });
  });

  it("refuses a batched or scheduled generator, saying what to change", () => {
    const app = new App("g");
    const gen = async function* (items: number[]) {
      yield items;
    };
    expect(() => app.function({ batched: { maxBatchSize: 2, wait: "10ms" } }, gen as never)).toThrow(/drop `batched`/);
    expect(() => app.function({ schedule: { periodMs: 60_000 } } as never, gen)).toThrow(/drop `schedule`/);
  });
});
