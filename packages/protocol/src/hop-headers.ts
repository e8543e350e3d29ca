/** Headers that describe one connection, not the message: a proxy never passes them on (RFC 9110, 7.6.1). */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
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

/** A message's headers as node gives them: lower-case names, a list for a repeated header. */
export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * `headers` as a proxy passes them on: without hop-by-hop headers, those the `Connection` header names, and
 * those in `drop`.
 */
export function endToEndHeaders(
  headers: HeaderMap,
  drop: ReadonlySet<string> = new Set(),
): Record<string, string | string[]> {
  const connection = headers.connection;
  const named = new Set(
    String(connection ?? "")
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || named.has(name) || drop.has(name)) continue;
    out[name] = value;
  }
  return out;
}
