import { z } from "zod";
import { ErrorCode } from "../error-code.js";

/** Raw bytes inside a CBOR frame. */
export const Bytes = z.custom<Uint8Array>((value) => value instanceof Uint8Array, "expected bytes");

/** A blob's name: the sha256 of its bytes, in lowercase hex. */
export const BLOB_HASH = /^[0-9a-f]{64}$/;

/** A terminal for a shell: its size, and the caller's TERM. */
export const Terminal = z.object({
  rows: z.number().int().min(1).max(10_000),
  cols: z.number().int().min(1).max(10_000),
  term: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,64}$/)
    .default("xterm-256color"),
});
export type Terminal = z.infer<typeof Terminal>;

/** A payload is CBOR bytes inline, or a sha256 of a blob when it is larger than INLINE_PAYLOAD_LIMIT. */
export const Payload = z.union([z.object({ inline: Bytes }), z.object({ blob: z.string().regex(BLOB_HASH) })]);
export type Payload = z.infer<typeof Payload>;

/** Whether `value` is a Payload (what the zod schema above accepts), without zod. */
export function isPayload(value: unknown): value is Payload {
  if (typeof value !== "object" || value === null) return false;
  const payload = value as { inline?: unknown; blob?: unknown };
  if ("inline" in payload) return payload.inline instanceof Uint8Array;
  return typeof payload.blob === "string" && BLOB_HASH.test(payload.blob);
}

/** How an attempt ended: its value, or an error. */
export const OutputStatus = z.enum(["success", "failure"]);
export type OutputStatus = z.infer<typeof OutputStatus>;

/** A final result of one input of a call, as the caller receives it. */
export const Result = z.object({
  idx: z.number().int().min(0),
  status: OutputStatus,
  /** Why it failed, for failures the platform produced (timeouts, crashes); user errors are USER_ERROR. */
  code: ErrorCode.optional(),
  data: Payload,
});
export type Result = z.infer<typeof Result>;

/** A value a generator yielded, as its caller receives it: its number (from 0) and the encoded value. */
export const GeneratorItem = z.object({ index: z.number().int().min(0), data: Payload });
export type GeneratorItem = z.infer<typeof GeneratorItem>;

/** One line a container (or the platform, on `system`) wrote, as the worker sends it and a client sees it. */
export const LogLine = z.object({
  ts: z.number(),
  appId: z.string(),
  functionName: z.string(),
  containerId: z.string(),
  stream: z.enum(["stdout", "stderr", "system"]),
  line: z.string(),
  /** The line's number in its container (from 1): a line sent again after a reconnect is known by it. */
  seq: z.number().int().min(1).optional(),
});
export type LogLine = z.infer<typeof LogLine>;

/** Output of a shell: its stdout and stderr, and `system` lines (the image's build); the worker's and the client's. */
export const ShellOutput = z.object({
  t: z.literal("shell-output"),
  sid: z.string(),
  stream: z.enum(["stdout", "stderr", "system"]),
  data: Bytes,
});

/** The shell ended: its exit code, or why it could not start; the worker's and the client's. */
export const ShellExit = z.object({
  t: z.literal("shell-exit"),
  sid: z.string(),
  code: z.number().int().nullable(),
  error: z.string().optional(),
});
