import { z } from "zod";
import { RESOURCE_NAME } from "../constants.js";

/**
 * An instant in an answer: an ISO 8601 string on the wire. The server may hand a Date, which JSON writes as
 * that string.
 */
export const Instant = z
  .union([z.string(), z.date()])
  .transform((at) => (typeof at === "string" ? at : at.toISOString()));

/** A sha256 hex digest: how blobs, bundles and layers are named. */
export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** An environment's name, as a body gives it. */
export const EnvName = z.string().regex(RESOURCE_NAME, "environment names use letters, digits, '-' and '_'");

/** The environment a request acts in (`?env=`): `main` by default, or a container's own. */
export const EnvQuery = z.object({ env: z.string().optional() });

/** The answer of a route that only says it was done. */
export const Done = z.object({ ok: z.literal(true) });
