import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

/**
 * Listens on a Unix socket in a container's socket directory and relays each connection, byte for byte,
 * to the server's API. Code in the container reaches the server this way whatever its network (none, a
 * private namespace, another host): the socket is the only way out it needs. The relay adds nothing:
 * every request still carries the container's own token, which the server checks.
 */
export function relayToServer(path: string, serverUrl: string): Promise<Server> {
  const url = new URL(serverUrl);
  const tls = url.protocol === "https:";
  const port = Number(url.port || (tls ? 443 : 80));
  // URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const open = (): Socket => (tls ? tlsConnect({ host, port, servername: host }) : netConnect({ host, port }));
  return new Promise((resolve, reject) => {
    const server = createServer((inside) => {
      const upstream = open();
      inside.pipe(upstream).pipe(inside);
      const close = () => {
        inside.destroy();
        upstream.destroy();
      };
      inside.on("error", close).on("close", close);
      upstream.on("error", close).on("close", close);
    });
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}
