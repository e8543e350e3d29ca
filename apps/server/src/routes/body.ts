import type { IncomingMessage } from "node:http";
import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../errors.js";
import { BODY_LIMITS, declaredSize, tooLarge } from "./limits.js";

/**
 * A JSON request body checked against `schema`; a bad one is a BAD_REQUEST naming the first problem. The
 * body is read up to `limit` bytes and no further: a larger one is a PAYLOAD_TOO_LARGE, whatever it
 * declared.
 */
export async function parseBody<T extends z.ZodTypeAny>(
  request: Request,
  schema: T,
  limit: number = BODY_LIMITS.json,
): Promise<z.infer<T>> {
  const text = await readText(request, limit);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError("BAD_REQUEST", "the request body is not JSON");
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    // A message that names its subject itself (see the manifest's) is shown as it is.
    const bare = issue.code === "custom" && issue.params?.bare === true;
    throw new ApiError("BAD_REQUEST", bare ? issue.message : `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

async function readText(request: Request, limit: number): Promise<string> {
  declaredSize(request, limit);
  if (!request.body) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of request.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.length;
    // What is left unread is drained and dropped by the HTTP server once the answer is sent.
    if (total > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total).toString("utf8");
}

/**
 * A request's body as bytes: straight from Node's request under the HTTP server (no web-stream layer on a
 * path that moves gigabytes), else from the Request (in-process calls).
 */
export function bodyOf(c: Context): AsyncIterable<Uint8Array> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return incoming;
  return (c.req.raw.body ?? []) as AsyncIterable<Uint8Array>;
}
