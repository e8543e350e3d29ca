const AsyncGeneratorFunction = Object.getPrototypeOf(async function* () {}).constructor as new () => unknown;

/** Whether `fn` was written as `async function*` (or an `async *method()`): its calls stream what it yields. */
export function isAsyncGeneratorFunction(fn: unknown): boolean {
  return fn instanceof AsyncGeneratorFunction;
}

/** Whether `value` is the object an `async function*` returned (not any async iterable). */
export function isAsyncGenerator(value: unknown): value is AsyncGenerator<unknown, unknown, unknown> {
  return Object.prototype.toString.call(value) === "[object AsyncGenerator]";
}

/** What a generator function's handle yields: the handler's yield type. */
export type YieldOf<R> = R extends AsyncIterable<infer Y> ? Y : never;
