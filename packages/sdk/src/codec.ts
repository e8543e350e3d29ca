import { releasingLarge } from "@skiff/protocol/frame";
import { addExtension, Decoder, Encoder } from "cbor-x";
import { isNonRetriable, NonRetriableError } from "./errors.js";

interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: unknown;
  nonRetriable?: boolean;
  cause?: unknown;
}

const BUILTIN_ERRORS: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** Rebuilds an error from the wire: built-in classes come back as themselves, others keep their name. */
function reviveError(wire: WireError): Error {
  const error: Error & { code?: unknown } = wire.nonRetriable
    ? new NonRetriableError(wire.message)
    : new (BUILTIN_ERRORS[wire.name] ?? Error)(wire.message);
  if (error.name !== wire.name)
    Object.defineProperty(error, "name", { value: wire.name, configurable: true, writable: true });
  if (wire.stack !== undefined) error.stack = wire.stack;
  if (wire.code !== undefined) error.code = wire.code;
  if (wire.cause !== undefined) error.cause = wire.cause;
  return error;
}

// Tag 27 would drop the stack; a private tag keeps class name, message, stack, code and cause.
addExtension({
  Class: Error,
  tag: 40_001,
  encode(error: Error & { code?: unknown }, encode: (value: unknown) => Uint8Array) {
    const wire: WireError = { name: error.name, message: error.message, stack: error.stack };
    if (error.code !== undefined) wire.code = error.code;
    if (isNonRetriable(error)) wire.nonRetriable = true;
    if (error.cause !== undefined) wire.cause = error.cause;
    return encode(wire);
  },
  decode: (wire: WireError) => reviveError(wire),
});

const encoder = new Encoder({ useRecords: false });
const decoder = new Decoder({ useRecords: false });

/** Encodes call arguments and results: Date, Map, Set, BigInt, typed arrays and Errors survive. */
export function encodeValue(value: unknown): Uint8Array {
  try {
    return releasingLarge(encoder, encoder.encode(value));
  } catch (cause) {
    throw new TypeError(`this value cannot be sent to or from a container: ${(cause as Error).message}`, { cause });
  }
}

export function decodeValue<T = unknown>(bytes: Uint8Array): T {
  return decoder.decode(bytes) as T;
}
