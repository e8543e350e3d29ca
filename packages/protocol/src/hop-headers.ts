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
  const named = namedByConnection(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP_HEADERS.has(name) || named?.has(name) || drop.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** The headers a `Connection` header names as this connection's own; none for the usual keep-alive or close. */
function namedByConnection(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined || connection === "keep-alive" || connection === "close") return undefined;
  return new Set(
    String(connection)
      .split(",")
      .map((name) => name.trim().toLowerCase())
      .filter(Boolean),
  );
}
