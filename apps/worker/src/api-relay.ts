import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/**
 * A connection handler that relays each connection, byte for byte, to the server's API. The worker serves
 * it on a Unix socket in a container's socket directory, so code in the container reaches the server
 * whatever its network (none, a private namespace, another host): the socket is the only way out it
 * needs. The relay adds nothing: every request still carries the container's own token, which the server
 * checks.
 */
export function relayTo(serverUrl: string): (inside: Socket) => void {
  const url = new URL(serverUrl);
  const tls = url.protocol === "https:";
  const port = Number(url.port || (tls ? 443 : 80));
  // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return (inside) => {
    const upstream = tls ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port });
    inside.pipe(upstream).pipe(inside);
    const close = () => {
      inside.destroy();
      upstream.destroy();
    };
    inside.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  };
}
