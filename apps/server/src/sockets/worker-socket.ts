import {
  type Link,
  PROTOCOL_VERSION,
  type ServerToWorker,
  type SocketLike,
  socketLink,
  WorkerMessage,
} from "@skiff/protocol";
import type { Logger } from "pino";
import type { ControlPlane } from "../engine/control-plane.js";
import type { WorkerConn } from "../engine/workers.js";

/** The server's end of a worker's WebSocket: CBOR frames, validated. */
export function workerSocketLink(socket: SocketLike, log: Logger): Link<ServerToWorker, WorkerMessage> {
  return socketLink(socket, (data) => {
    const parsed = WorkerMessage.safeParse(data);
    if (parsed.success) return parsed.data;
    log.warn({ issues: parsed.error.issues.slice(0, 3) }, "bad worker message");
    return undefined;
  });
}

/**
 * One worker agent's connection. Messages from a worker are handled in order: a claim must not overtake
 * the `started` of its container, nor outputs the claim that produced them.
 */
export function serveWorker(
  link: Link<ServerToWorker, WorkerMessage>,
  control: ControlPlane,
  log: Logger,
  blobUrl: string,
): void {
  let worker: WorkerConn | undefined;
  let queue: Promise<void> = Promise.resolve();
  const send = (message: ServerToWorker) => link.send(message);

  link.onMessage((message) => {
    queue = queue
      .then(async () => {
        if (message.t === "hello") {
          if (message.v !== PROTOCOL_VERSION) {
            link.close(
              4000,
              `worker speaks protocol ${message.v}, this server ${PROTOCOL_VERSION}: upgrade the older one`,
            );
            return;
          }
          worker = {
            id: message.workerId,
            name: message.name,
            capacity: message.capacity,
            webRelay: message.webRelay,
            containers: new Map(),
            send,
          };
          await control.workerConnected(worker, message.runtime, message.containers, message.held);
          send({ t: "welcome", v: PROTOCOL_VERSION, blobUrl });
          return;
        }
        if (!worker) {
          link.close(4001, "say hello first");
          return;
        }
        // Claims wait for work; do not hold up the rest of this worker's messages behind one.
        if (message.t === "claim")
          void control.workerMessage(worker, message).catch((err) => log.error({ err }, "claim failed"));
        else await control.workerMessage(worker, message);
      })
      .catch((error) => log.error({ err: error }, "worker message failed"));
  });
  link.onClose(() => {
    queue = queue.then(() => (worker ? control.workerDisconnected(worker) : undefined));
  });
}
