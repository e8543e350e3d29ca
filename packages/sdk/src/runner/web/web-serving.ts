import { rm } from "node:fs/promises";
import type { Server } from "node:net";

/** A web socket being served: `close` stops taking connections and resolves once those open are done. */
export interface WebServing {
  close(): Promise<void>;
}

/** Starts `server` on the Unix socket at `socketPath`, replacing a file left there by an earlier runner. */
export async function listenOnSocket(server: Server, socketPath: string): Promise<void> {
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
