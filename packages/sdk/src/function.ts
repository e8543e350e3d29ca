import { randomUUID } from "node:crypto";
import type { ClassShape, Result, SpecOverrides } from "@skiff/protocol";
import { inlineBytes } from "@skiff/protocol/batches";
import { BATCH_BYTES } from "@skiff/protocol/constants";
import { poolBaseId, poolId } from "@skiff/protocol/pool-id";
import { type Duration, parseDuration } from "@skiff/protocol/units";
import { BRAND } from "./brand.js";
import type { Client } from "./client.js";
import { clientFromEnvironment } from "./connect.js";
import { getContext } from "./context.js";
import { SkiffError } from "./errors.js";
import { FunctionCall, waitForResult } from "./function-call.js";
import { type FunctionOptions, toSpecOverrides, type VariantOptions } from "./function-spec.js";
import { isAsyncGeneratorFunction, type YieldOf } from "./generator.js";
import { GeneratorStream } from "./generator-stream.js";
import { settle, toPayload } from "./payload.js";
import { RemoteGenerator } from "./remote-generator.js";

export interface MapOptions {
  /** Yield results in input order (default) or as they finish. */
  order?: boolean;
  /** Yield a failed input's error instead of throwing it. */
  returnExceptions?: boolean;
}

const SUBMIT_CHUNK = 1000;

/**
 * A function that runs in containers. Made by `app.function(options, handler)`; exported under its name.
 * @example
 * export const square = app.function({ timeout: "30s" }, async (x: number) => x * x);
 * await square.remote(7); // 49
 */
export class SkiffFunction<A extends unknown[] = unknown[], R = unknown> {
  readonly [BRAND] = "function" as const;
  /** Set from the export name when the app is collected (or by `options.name`). */
  name: string | undefined;

  constructor(
    readonly appName: string,
    readonly options: FunctionOptions,
    readonly handler: ((...args: A) => R | Promise<R>) | undefined,
    private readonly deployedId?: string,
    /** A method of a class: calls go to the class's pool, naming the method. */
    private readonly via?: {
      cls: { poolId(): Promise<string>; isGeneratorMethod?(name: string): boolean | undefined };
      method: string;
    },
    /** Made by `withOptions`: the function it varies and what its pool overrides. */
    private readonly variant?: { of: SkiffFunction<A, R>; given: VariantOptions; overrides: SpecOverrides },
  ) {
    this.name = options.name;
  }

  /** A function looked up by name that the server says is an async generator. */
  deployedGenerator: boolean | undefined;

  /**
   * Whether the handler is an async generator (`async function*`), called with `.remoteGen`: known from the
   * handler, the class, or what the server said of a deployed one; undefined when nothing here says.
   */
  get isGenerator(): boolean | undefined {
    const handler = this.variant?.of.handler ?? this.handler;
    if (handler) return isAsyncGeneratorFunction(handler);
    if (this.via) return this.via.cls.isGeneratorMethod?.(this.via.method);
    return this.variant?.of.deployedGenerator ?? this.deployedGenerator;
  }

  /**
   * Refuses a plain call (`.remote`, `.spawn`, `.map`, `.starmap`, `.forEach`) of a generator: its values
   * come through `.remoteGen`, one call per input.
   */
  private refuseGenerator(how: "remote" | "spawn" | "map" | "starmap" | "forEach"): void {
    if (this.isGenerator !== true) return;
    const many =
      how === "remote" || how === "spawn"
        ? ""
        : "; a generator's call takes one input: for many, iterate one .remoteGen per input";
    throw new SkiffError(
      "BAD_REQUEST",
      `${this.label()} is an async generator function: iterate its values with \`for await (const value of ${this.name ?? "fn"}.remoteGen(...args))\`, not .${how}()${many}`,
    );
  }

  /** Whether this is a variant made by `withOptions` (apps collect the function, not its variants). */
  get isVariant(): boolean {
    return this.variant !== undefined;
  }

  /**
   * The same function with other options (memory, cpu, timeout, retries, concurrent, …), running in a
   * pool of containers of its own; this function is unchanged. Checked here as `app.function` options are.
   * @example
   * const big = resize.withOptions({ memory: "8GiB", cpu: 4 });
   * await big.remote(url);
   */
  withOptions(options: VariantOptions): SkiffFunction<A, R> {
    if (this.via) {
      throw new SkiffError(
        "BAD_REQUEST",
        "withOptions applies to the class: Model.withOptions({ ... }).method.remote()",
      );
    }
    const of = this.variant?.of ?? this;
    const given = { ...this.variant?.given, ...options };
    const overrides = toSpecOverrides(of.name ?? "<unnamed>", given, of.handler ? of.options : undefined);
    return new SkiffFunction<A, R>(this.appName, { ...of.options, ...given }, this.handler, undefined, undefined, {
      of,
      given,
      overrides,
    });
  }

  /** Runs the handler here, in this process (a batched handler with a batch of one). */
  async local(...args: A): Promise<R> {
    if (!this.handler) {
      const why = this.via ? "is a method: call it on an instance of the class" : "was looked up by name";
      throw new SkiffError("BAD_REQUEST", `${this.label()} ${why} and has no local handler`);
    }
    if (this.options.batched) {
      const results = (await (this.handler as unknown as (items: unknown[]) => unknown)([args[0]])) as R[];
      return results[0] as R;
    }
    return await this.handler(...args);
  }

  /** Changes this function's autoscaling until its next deploy. */
  async updateAutoscaler(settings: AutoscalerOptions): Promise<void> {
    if (this.via) throw new SkiffError("BAD_REQUEST", "update the autoscaler of the class, not of one method");
    const { functionId } = await this.target();
    // A variant's pool follows its function's autoscaling (its own overrides stay on top).
    await updateAutoscaler(poolBaseId(functionId), settings);
  }

  /** Submits one call of `args` (a generator's, with `gen`); settles once the server has taken it. */
  private async submitOne(client: Client, functionId: string, callId: string, args: A, gen: boolean): Promise<void> {
    const input = { idx: 0, args: await toPayload(client, this.wrap(args)) };
    await client.send({
      t: "submit",
      functionId,
      callId,
      total: 1,
      subscribe: true,
      ...(gen ? { gen } : {}),
      inputs: [input],
    });
  }

  /** Runs once in a container and returns its result (or throws its exception). */
  async remote(...args: A): Promise<R> {
    this.refuseGenerator("remote");
    const { client, functionId } = await this.target();
    const callId = randomUUID();
    const waiting = waitForResult(client, callId, { subscribe: false });
    const accepted = this.submitOne(client, functionId, callId, args, false);
    // The result can come before the acknowledgement (the server writes behind): either one settles it,
    // and a refusal still throws.
    accepted.catch(() => {});
    const settled = await settle(client, await Promise.race([waiting, accepted.then(() => waiting)]));
    if (!settled.ok) throw settled.error;
    return settled.value as R;
  }

  /** Starts a call without waiting for it. */
  async spawn(...args: A): Promise<FunctionCall<R>> {
    this.refuseGenerator("spawn");
    const { client, functionId } = await this.target();
    const callId = randomUUID();
    await client.send({
      t: "submit",
      functionId,
      callId,
      total: 1,
      subscribe: false,
      inputs: [{ idx: 0, args: await toPayload(client, this.wrap(args)) }],
    });
    return new FunctionCall<R>(callId, client);
  }

  /** Runs the function once per input, in parallel containers; yields results in input order by default. */
  map(
    inputs: Iterable<A[0]> | AsyncIterable<A[0]>,
    options?: MapOptions & { returnExceptions?: false },
  ): AsyncGenerator<R>;
  map(
    inputs: Iterable<A[0]> | AsyncIterable<A[0]>,
    options: MapOptions & { returnExceptions: true },
  ): AsyncGenerator<R | Error>;
  map(inputs: Iterable<A[0]> | AsyncIterable<A[0]>, options: MapOptions = {}): AsyncGenerator<R | Error> {
    this.refuseGenerator("map");
    return this.mapArgs(spread(inputs), options);
  }

  /** Like map, with each input an array of arguments. */
  starmap(
    inputs: Iterable<A> | AsyncIterable<A>,
    options?: MapOptions & { returnExceptions?: false },
  ): AsyncGenerator<R>;
  starmap(
    inputs: Iterable<A> | AsyncIterable<A>,
    options: MapOptions & { returnExceptions: true },
  ): AsyncGenerator<R | Error>;
  starmap(inputs: Iterable<A> | AsyncIterable<A>, options: MapOptions = {}): AsyncGenerator<R | Error> {
    this.refuseGenerator("starmap");
    return this.mapArgs(inputs, options);
  }

  /** Runs the function on every input for its effects; throws the first failure. */
  async forEach(inputs: Iterable<A[0]> | AsyncIterable<A[0]>): Promise<void> {
    this.refuseGenerator("forEach");
    for await (const _ of this.mapArgs(spread(inputs), { order: false })) {
      // results are discarded
    }
  }

  private async *mapArgs(
    inputs: Iterable<unknown[]> | AsyncIterable<unknown[]>,
    options: MapOptions,
  ): AsyncGenerator<R | Error> {
    const { client, functionId } = await this.target();
    const callId = randomUUID();
    const arrived = new Map<number, Result>();
    // Results can come twice (replayed after a reconnect); each index is taken once.
    const seen = new Set<number>();
    let wake: (() => void) | undefined;
    const off = client.onResults(callId, (results) => {
      for (const result of results) {
        if (seen.has(result.idx)) continue;
        seen.add(result.idx);
        arrived.set(result.idx, result);
      }
      wake?.();
    });
    let submitted = 0;
    let submittedAll = false;
    let submitError: unknown;
    const submitting = (async () => {
      let chunk: { idx: number; args: Awaited<ReturnType<typeof toPayload>> }[] = [];
      let chunkBytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        const inputsNow = chunk;
        chunk = [];
        chunkBytes = 0;
        await client.send({ t: "submit", functionId, callId, total: submitted, subscribe: true, inputs: inputsNow });
      };
      for await (const args of inputs) {
        const payload = await toPayload(client, this.wrap(args));
        chunk.push({ idx: submitted++, args: payload });
        // A submit stays one WebSocket message well below MAX_FRAME_BYTES.
        chunkBytes += inlineBytes(payload);
        if (chunk.length >= SUBMIT_CHUNK || chunkBytes >= BATCH_BYTES) await flush();
      }
      await flush();
    })()
      .catch((error) => {
        submitError = error;
      })
      .finally(() => {
        submittedAll = true;
        wake?.();
      });

    let yielded = 0;
    let nextIdx = 0;
    let finished = false;
    const onProgress = getContext()?.onProgress;
    const report = (done: boolean) =>
      onProgress?.({
        callId,
        label: `${this.name ?? "function"}.map`,
        done: yielded,
        total: submitted,
        submittedAll,
        finished: done,
      });
    try {
      for (;;) {
        if (submitError) throw submitError;
        if (submittedAll && yielded === submitted) break;
        const idx = options.order === false ? arrived.keys().next().value : arrived.has(nextIdx) ? nextIdx : undefined;
        if (idx === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        const result = arrived.get(idx)!;
        arrived.delete(idx);
        if (idx === nextIdx) nextIdx++;
        yielded++;
        report(false);
        if (result.idx < 0) throw new SkiffError(result.code ?? "UNAVAILABLE", "lost the connection to the server");
        const settled = await settle(client, result);
        if (settled.ok) yield settled.value as R;
        else if (options.returnExceptions) yield settled.error;
        else throw settled.error;
      }
      finished = true;
    } finally {
      report(true);
      off();
      await submitting;
      if (!finished) await client.send({ t: "cancel", callId }).catch(() => {});
    }
  }

  /**
   * Runs an async generator function (`async function*`) once in a container and yields each value it
   * yields, as it yields it. The generator runs at most GENERATOR_WINDOW values ahead of this loop; leaving
   * the loop early (`break`, `return`, a throw) cancels it, at once even while a `next()` waits for a value
   * (`return()` does not wait behind it, as an `async function*`'s would). A throw in the generator is
   * rethrown here after the values it yielded before. Generators are not retried once they have yielded.
   * @example
   * export const tokens = app.function({}, async function* (prompt: string) {
   *   for (const word of prompt.split(" ")) yield word;
   * });
   * for await (const token of tokens.remoteGen("a b c")) process.stdout.write(token);
   */
  remoteGen(...args: A): AsyncGenerator<YieldOf<R>, void, undefined> {
    return new RemoteGenerator<YieldOf<R>>(async () => {
      if (this.isGenerator === false) {
        throw new SkiffError(
          "BAD_REQUEST",
          `${this.label()} is not an async generator function: call it with .remote(...args); .remoteGen is for \`async function*\` handlers`,
        );
      }
      const { client, functionId } = await this.target();
      const callId = randomUUID();
      const stream = new GeneratorStream(client, callId);
      const accepted = this.submitOne(client, functionId, callId, args, true);
      accepted.catch((error: unknown) => stream.fail(error));
      return {
        stream,
        // After the submit: a cancel that overtook it would find no call.
        cancel: () =>
          accepted.then(
            () => client.send({ t: "cancel", callId }).catch(() => {}),
            () => {},
          ),
      };
    });
  }

  /** A method's input names the method first. */
  private wrap(args: unknown[]): unknown[] {
    return this.via ? [this.via.method, ...args] : args;
  }

  private async target(): Promise<{ client: Client; functionId: string }> {
    if (this.variant) {
      const { client, functionId } = await this.variant.of.target();
      return { client, functionId: poolId(functionId, {}, this.variant.overrides) };
    }
    const client = await clientFromEnvironment();
    if (this.via) return { client, functionId: await this.via.cls.poolId() };
    if (this.deployedId) return { client, functionId: this.deployedId };
    const functionId = this.name ? getContext()?.functionIds[this.name] : undefined;
    if (!functionId) {
      throw new SkiffError(
        "BAD_REQUEST",
        `${this.label()} is not part of a running app: run this file with \`skiff run\`, or look it up with Function.fromName(app, name)`,
      );
    }
    return { client, functionId };
  }

  private label(): string {
    return `function ${this.appName}.${this.variant?.of.name ?? this.name ?? "<unnamed>"}`;
  }
}

/** What `updateAutoscaler` changes; durations take seconds or "10m". */
export interface AutoscalerOptions {
  minContainers?: number;
  maxContainers?: number;
  bufferContainers?: number;
  scaledownWindow?: Duration;
}

export async function updateAutoscaler(functionId: string, settings: AutoscalerOptions): Promise<void> {
  const client = await clientFromEnvironment();
  // Loaded on first use: a route's schemas (and zod) stay out of every container's start.
  const { functionRoutes } = await import("@skiff/protocol/http/functions");
  const { scaledownWindow, ...counts } = settings;
  await client.call(functionRoutes.updateAutoscaler, {
    params: { id: functionId },
    body: {
      ...counts,
      ...(scaledownWindow === undefined
        ? {}
        : { scaledownWindowMs: parseDuration(scaledownWindow, "scaledownWindow") }),
    },
  });
}

async function* spread<T>(inputs: Iterable<T> | AsyncIterable<T>): AsyncGenerator<[T]> {
  for await (const input of inputs) yield [input];
}

/**
 * Deployed functions by name, from any Node program.
 * @example
 * const square = await Function.fromName<[number], number>("hello", "square");
 * await square.remote(3);
 */
/** A function or class of a running app, by name: its id and, for a class, its shape. */
export async function lookUp(
  appName: string,
  name: string,
  env = getContext()?.env ?? process.env.SKIFF_ENV ?? "main",
): Promise<{ functionId: string; cls?: ClassShape; generator?: boolean }> {
  const client = await clientFromEnvironment();
  // Loaded on first use: a route's schemas (and zod) stay out of every container's start.
  const { functionRoutes } = await import("@skiff/protocol/http/functions");
  return client.call(functionRoutes.lookup, { query: { app: appName, name, env } });
}

// biome-ignore lint/suspicious/noShadowRestrictedNames: the SDK's public name, as users of such platforms expect.
export const Function = {
  async fromName<A extends unknown[] = unknown[], R = unknown>(
    appName: string,
    name: string,
    options: { env?: string } = {},
  ): Promise<SkiffFunction<A, R>> {
    const found = await lookUp(appName, name, options.env);
    if (found.cls) {
      throw new SkiffError(
        "BAD_REQUEST",
        `${appName}.${name} is a class: look it up with Cls.fromName("${appName}", "${name}")`,
      );
    }
    const fn = new SkiffFunction<A, R>(appName, { name }, undefined, found.functionId);
    fn.deployedGenerator = found.generator ?? false;
    return fn;
  },
};
