import { decodeMessage, encodeMessage, PROTOCOL_VERSION, type ServerToWorker, WorkerMessage } from "@skiff/protocol";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { ControlPlane } from "../engine/control-plane.js";
import type { WorkerConn } from "../engine/workers.js";

/**
 * One worker agent's connection. Messages from a worker are handled in order: a claim must not overtake
 * the `started` of its container, nor outputs the claim that produced them.
 */
export function serveWorker(socket: WebSocket, control: ControlPlane, log: Logger, blobUrl: string): void {
  let worker: WorkerConn | undefined;
  let queue: Promise<void> = Promise.resolve();
  const send = (message: ServerToWorker) => {
    if (socket.readyState === socket.OPEN) socket.send(encodeMessage(message));
  };

  socket.on("message", (data: Buffer) => {
    queue = queue
      .then(async () => {
        const parsed = WorkerMessage.safeParse(decodeMessage(data));
        if (!parsed.success) {
          log.warn({ issues: parsed.error.issues.slice(0, 3) }, "bad worker message");
          return;
        }
        const message = parsed.data;
        if (message.t === "hello") {
          if (message.v !== PROTOCOL_VERSION) {
            socket.close(
              4000,
              `worker speaks protocol ${message.v}, this server ${PROTOCOL_VERSION}: upgrade the older one`,
            );
            return;
          }
          worker = {
            id: message.workerId,
            name: message.name,
            capacity: message.capacity,
            containers: new Map(),
            send,
          };
          await control.workerConnected(worker, message.runtime, message.containers, message.held);
          send({ t: "welcome", v: PROTOCOL_VERSION, blobUrl });
          return;
        }
        if (!worker) {
          socket.close(4001, "say hello first");
          return;
        }
        // Claims wait for work; do not hold up the rest of this worker's messages behind one.
        if (message.t === "claim")
          void control.workerMessage(worker, message).catch((err) => log.error({ err }, "claim failed"));
        else await control.workerMessage(worker, message);
      })
      .catch((error) => log.error({ err: error }, "worker message failed"));
  });
  socket.on("close", () => {
    queue = queue.then(() => (worker ? control.workerDisconnected(worker) : undefined));
  });
}
