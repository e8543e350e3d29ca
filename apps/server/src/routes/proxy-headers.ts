import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { endToEndHeaders, REQUEST_ID_HEADER, WEB_RELAY_SECRET_HEADER } from "@skiff/protocol";

/** Headers the gateway sets itself, or that carry a proxy token's secret: a client's own are dropped. */
const GATEWAY_OWNED = new Set([
  WEB_RELAY_SECRET_HEADER,
  REQUEST_ID_HEADER,
  "skiff-key",
  "skiff-secret",
  "x-forwarded-host",
  "x-forwarded-prefix",
]);

/**
 * What goes to a worker's relay: the client's headers, the relay's secret, the request id and `x-forwarded-*`
 * (no secret for a container reached directly, without a relay).
 */
export function relayHeaders(
  headers: IncomingHttpHeaders,
  forward: { secret?: string; requestId: string; remoteAddress: string | undefined; prefix: string },
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = endToEndHeaders(headers, GATEWAY_OWNED);
  if (forward.secret !== undefined) out[WEB_RELAY_SECRET_HEADER] = forward.secret;
  out[REQUEST_ID_HEADER] = forward.requestId;
  out["x-forwarded-for"] = [headers["x-forwarded-for"], forward.remoteAddress].filter(Boolean).join(", ");
  out["x-forwarded-proto"] = headers["x-forwarded-proto"] ?? "http";
  if (forward.prefix) out["x-forwarded-prefix"] = forward.prefix;
  if (headers.host) out["x-forwarded-host"] = headers.host;
  return out;
}
