import { z } from "zod";
import { ErrorCode } from "../error-code.js";
import { ImageSpec } from "../manifest.js";
import {
  Bytes,
  GeneratorItem,
  isPayload,
  LogLine,
  type Payload,
  Result,
  ShellExit,
  ShellOutput,
  Terminal,
} from "./shared.js";

// client <-> server: WebSocket /v1/client, CBOR frames.

/** One input of a submit: its index in the call and its arguments. */
export type SubmitInput = { idx: number; args: Payload };

/**
 * The inputs of a submit, checked by hand: a map sends them 1,000 at a time, and checking each with zod (a union
 * per payload) cost ~6 µs an input, a sizeable part of the server's work per input.
 */
const SubmitInputs = z.custom<SubmitInput[]>(
  (value) =>
    Array.isArray(value) &&
    value.every((input: { idx?: unknown; args?: unknown }) => {
      if (typeof input !== "object" || input === null || !Number.isInteger(input.idx) || (input.idx as number) < 0)
        return false;
      return isPayload(input.args);
    }),
  "inputs must be a list of { idx: an integer ≥ 0, args: { inline: bytes } or { blob: a sha256 in hex } }",
);

/** What a client (the SDK, the CLI) sends the server. */
export const ClientMessage = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("submit"),
    rid: z.number(),
    functionId: z.string(),
    /** Chosen by the client, so a resend after a reconnect is deduplicated by (callId, idx). */
    callId: z.string().uuid(),
    inputs: SubmitInputs,
    /** The total number of inputs the call will have (a map submits in chunks). */
    total: z.number().int().min(0),
    /** Push results of this call to this connection. */
    subscribe: z.boolean(),
    /** Sent again after a reconnect: the server checks what it already has before running anything. */
    resent: z.boolean().default(false),
    /** A generator's call (`.remoteGen`): its values are pushed as `items` before its result. */
    gen: z.boolean().optional(),
  }),
  /**
   * The caller of a generator took `consumed` values: the generator may run up to GENERATOR_WINDOW values
   * ahead of that (backpressure from the caller's loop to the runner).
   */
  z.object({
    t: z.literal("gen-ack"),
    rid: z.number(),
    callId: z.string().uuid(),
    consumed: z.number().int().min(0),
  }),
  z.object({
    t: z.literal("subscribe"),
    rid: z.number(),
    callId: z.string().uuid(),
    fromIdx: z.number().int().min(0).default(0),
  }),
  z.object({ t: z.literal("cancel"), rid: z.number(), callId: z.string().uuid() }),
  /** Stop pushing this call's results here (the caller has what it wanted). */
  z.object({ t: z.literal("unsubscribe"), rid: z.number(), callId: z.string().uuid() }),
  /**
   * Streams an app's logs. `resume` after a reconnect: the server first sends the lines it still holds
   * (the last minute), and the client drops those it had by their `seq`.
   */
  z.object({ t: z.literal("logs"), rid: z.number(), appId: z.string(), resume: z.boolean().optional() }),
  z.object({ t: z.literal("ping"), rid: z.number() }),
  /** Opens a shell (or runs `command`) in a container of `image`; output comes back as `shell-output`. */
  z.object({
    t: z.literal("shell-open"),
    rid: z.number(),
    sid: z.string().uuid(),
    image: ImageSpec,
    command: z.array(z.string()).min(1).default(["/bin/sh"]),
    /** Where the image's registry secret is looked up. */
    env: z.string().default("main"),
    /** Run it on a terminal of this size (an interactive `skiff shell`); plain pipes without. */
    tty: Terminal.optional(),
  }),
  /** The caller's terminal changed size. */
  z.object({
    t: z.literal("shell-resize"),
    rid: z.number(),
    sid: z.string().uuid(),
    rows: z.number().int().min(1).max(10_000),
    cols: z.number().int().min(1).max(10_000),
  }),
  /** Bytes for the shell's stdin; `eof` closes it. */
  z.object({
    t: z.literal("shell-input"),
    rid: z.number(),
    sid: z.string().uuid(),
    data: Bytes.optional(),
    eof: z.boolean().default(false),
  }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;
/** A client message as sent: fields with defaults may be left out. */
export type ClientMessageInput = z.input<typeof ClientMessage>;

/** What the server sends a client: answers, results, log lines and shell output. */
export const ServerToClient = z.discriminatedUnion("t", [
  z.object({
    t: z.literal("ack"),
    rid: z.number(),
    error: z.object({ code: ErrorCode, message: z.string() }).optional(),
  }),
  z.object({ t: z.literal("results"), callId: z.string(), results: z.array(Result) }),
  /** Values a generator yielded, numbered from 0; its result (the count) comes after the last. Never replayed. */
  z.object({ t: z.literal("items"), callId: z.string(), items: z.array(GeneratorItem) }),
  z.object({ t: z.literal("logs"), lines: z.array(LogLine) }),
  /** The app is stopped and its containers are gone: every line they wrote was sent before this. */
  z.object({ t: z.literal("logs-end"), appId: z.string() }),
  ShellOutput,
  ShellExit,
]);
export type ServerToClient = z.infer<typeof ServerToClient>;
