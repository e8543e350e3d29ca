import { describe, expect, it } from "vitest";
import { decodeValue, encodeValue } from "./codec.js";
import { isNonRetriable, NonRetriableError } from "./errors.js";

const roundTrip = <T>(value: T): T => decodeValue<T>(encodeValue(value));

describe("codec", () => {
  it("keeps Date, Map, Set, BigInt, typed arrays and undefined", () => {
    const value = {
      date: new Date(1_700_000_000_123),
      map: new Map<unknown, unknown>([[1, { a: [1, 2] }]]),
      set: new Set(["x"]),
      big: -(2n ** 80n),
      bytes: new Uint8Array([0, 255]),
      floats: new Float32Array([0.5]),
      missing: undefined,
    };
    const back = roundTrip(value);
    expect(back.date).toEqual(value.date);
    expect(back.map).toEqual(value.map);
    expect(back.set).toEqual(value.set);
    expect(back.big).toBe(value.big);
    expect(back.bytes).toEqual(value.bytes);
    expect(back.floats).toBeInstanceOf(Float32Array);
    expect("missing" in back).toBe(true);
  });

  it("keeps an error's class name, message, stack, code and cause", () => {
    class QuotaError extends Error {
      code = "Q1";
      constructor(message: string, options?: { cause?: unknown }) {
        super(message, options);
        this.name = "QuotaError";
      }
    }
    const error = new QuotaError("over quota", { cause: new TypeError("inner") });
    const back = roundTrip(error) as Error & { code: string; cause: Error };
    expect(back).toBeInstanceOf(Error);
    expect(back.name).toBe("QuotaError");
    expect(back.message).toBe("over quota");
    expect(back.stack).toBe(error.stack);
    expect(back.code).toBe("Q1");
    expect(back.cause).toBeInstanceOf(TypeError);
  });

  it("revives built-in error classes and NonRetriableError as themselves", () => {
    expect(roundTrip(new RangeError("r"))).toBeInstanceOf(RangeError);
    const back = roundTrip(new NonRetriableError("stop"));
    expect(back).toBeInstanceOf(NonRetriableError);
    expect(isNonRetriable(back)).toBe(true);
  });

  it("says which value cannot be sent", () => {
    expect(() => encodeValue({ fn: () => 1 })).toThrow(/cannot be sent to or from a container/);
  });
});
