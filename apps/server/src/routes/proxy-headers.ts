import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { REQUEST_ID_HEADER, WEB_RELAY_SECRET_HEADER } from "@skiff/protocol";

/** Headers that describe one connection, not the message: never passed on by a proxy. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Headers the gateway sets itself, or that carry a proxy token's secret: a client's own are dropped. */
const GATEWAY_OWNED = new Set([
  WEB_RELAY_SECRET_HEADER,
  REQUEST_ID_HEADER,
  "skiff-key",
  "skiff-secret",
  "x-forwarded-host",
  "x-forwarded-prefix",
]);

/** `headers` without hop-by-hop ones (those `Connection` names included) and those `drop` names. */
export function endToEnd(headers: IncomingHttpHeaders, drop: ReadonlySet<string> = new Set()): OutgoingHttpHeaders {
  const named = new Set(
    (headers.connection ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name) || drop.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * What goes to a worker's relay: the client's headers, the relay's secret, the request id and `x-forwarded-*`
 * (no secret for a container reached directly, without a relay).
 */
export function relayHeaders(
  headers: IncomingHttpHeaders,
  forward: { secret?: string; requestId: string; remoteAddress: string | undefined; prefix: string },
): OutgoingHttpHeaders {
  const out = endToEnd(headers, GATEWAY_OWNED);
  const chain = [headers["x-forwarded-for"], forward.remoteAddress].filter(Boolean).join(", ");
  return {
    ...out,
    ...(forward.secret === undefined ? {} : { [WEB_RELAY_SECRET_HEADER]: forward.secret }),
    [REQUEST_ID_HEADER]: forward.requestId,
    "x-forwarded-for": chain,
    "x-forwarded-proto": headers["x-forwarded-proto"] ?? "http",
    ...(forward.prefix ? { "x-forwarded-prefix": forward.prefix } : {}),
    ...(headers.host ? { "x-forwarded-host": headers.host } : {}),
  };
}
