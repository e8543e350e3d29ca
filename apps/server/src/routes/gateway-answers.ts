import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { REQUEST_ID_HEADER } from "@skiff/protocol";

/** 502: the container (or its relay) failed before its answer started. */
export function crashed(res: ServerResponse, requestId: string): void {
  answer(res, 502, {
    error: {
      code: "CONTAINER_CRASHED",
      message: `the container failed while answering request ${requestId}: try again (a new request gets a working container)`,
      requestId,
    },
  });
}

/**
 * What a client sends after its upgrade request and before the switch, kept for the container (a WebSocket
 * client sends nothing then, so little is kept: past 64 KiB the client is cut off). Reading also lets the
 * gateway see a client that leaves while its upgrade waits for a container: nobody reads an upgraded socket
 * otherwise, and its end would go unnoticed.
 */
export class EarlyBytes {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private readonly keep = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    if (this.bytes > 64 * 1024) this.socket.destroy();
  };
  private readonly ended = () => this.socket.destroy();

  constructor(
    private readonly socket: Duplex,
    head: Buffer,
  ) {
    if (head.length > 0) this.keep(head);
    socket.on("data", this.keep).once("end", this.ended);
  }

  /** Stops reading, and gives what was kept. */
  take(): Buffer[] {
    this.socket.off("data", this.keep).off("end", this.ended);
    this.socket.pause();
    return this.chunks;
  }
}

/** The container's 101 as the client gets it: its status line and headers, and the request's id. */
export function switchingHead(answer: IncomingMessage, requestId: string): string {
  const lines = [`HTTP/1.1 ${answer.statusCode ?? 101} ${answer.statusMessage || "Switching Protocols"}`];
  for (let i = 0; i < answer.rawHeaders.length; i += 2) {
    if (answer.rawHeaders[i]!.toLowerCase() === REQUEST_ID_HEADER) continue;
    lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
  }
  lines.push(`${REQUEST_ID_HEADER}: ${requestId}`);
  return `${lines.join("\r\n")}\r\n\r\n`;
}

/** A JSON answer from the gateway itself, unless an answer has started already. */
export function answer(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
