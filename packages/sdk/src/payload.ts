import type { Payload, Result } from "@skiff/protocol";
import { INLINE_PAYLOAD_LIMIT } from "@skiff/protocol/constants";
import type { Client } from "./client.js";
import { decodeValue, encodeValue } from "./codec.js";
import { CallError } from "./errors.js";

/** Encodes a value as a payload, through the blob store when it is too large to travel inline. */
export async function toPayload(client: Client, value: unknown): Promise<Payload> {
  const bytes = encodeValue(value);
  if (bytes.length <= INLINE_PAYLOAD_LIMIT) return { inline: bytes };
  return { blob: await client.putBlob(bytes) };
}

export async function fromPayload(client: Client, payload: Payload): Promise<unknown> {
  return decodeValue("inline" in payload ? payload.inline : await client.getBlob(payload.blob));
}

/** The value of a result, or the error it carries (a user exception as thrown, or a CallError). */
export async function settle(
  client: Client,
  result: Result,
): Promise<{ ok: true; value: unknown } | { ok: false; error: Error }> {
  if (result.status === "success") return { ok: true, value: await fromPayload(client, result.data) };
  if (result.code && result.code !== "USER_ERROR") {
    const detail = (await fromPayload(client, result.data).catch(() => undefined)) as
      | { message?: string }
      | string
      | undefined;
    const message = typeof detail === "string" ? detail : (detail?.message ?? result.code);
    const error = new CallError(result.code, message);
    if (detail instanceof Error) {
      // The user's own error (an `enter` hook or the module threw while loading): keep where it came from.
      error.cause = detail;
      if (detail.stack) error.stack = detail.stack.replace(/^[^\n]*/, `${error.name}: ${message}`);
    }
    return { ok: false, error };
  }
  const error = await fromPayload(client, result.data);
  return { ok: false, error: error instanceof Error ? error : new Error(String(error)) };
}
