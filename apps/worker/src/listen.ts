import { createServer, type Server, type Socket } from "node:net";

/** A server on the Unix socket at `path`, once it listens. */
export function listen(path: string, onConnection: (socket: Socket) => void): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(onConnection);
    server.once("error", reject);
    server.listen(path, () => resolve(server));
  });
}
