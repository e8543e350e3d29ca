import type { Context } from "hono";
import type { z } from "zod";
import { ApiError } from "../errors.js";

/**
 * A request's query string checked against `schema`; a bad one is a BAD_REQUEST with the first problem's
 * message, which a query's schema words itself (say what to pass).
 */
export function parseQuery<T extends z.AnyZodObject>(c: Context, schema: T): z.output<T> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw new ApiError("BAD_REQUEST", parsed.error.issues[0]!.message);
  return parsed.data;
}
