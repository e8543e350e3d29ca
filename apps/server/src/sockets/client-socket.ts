import {
  batchesOf,
  ClientMessage,
  decodeMessage,
  encodeMessage,
  inlineBytes,
  type ServerToClient,
} from "@skiff/protocol";
import type { Principal } from "@skiff/store";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { workspaceOf } from "../auth.js";
import type { ControlPlane } from "../engine/control-plane.js";
import type { Subscriber } from "../engine/hub.js";
import type { Caller } from "../engine/state.js";
import { ApiError, apiErrorOf } from "../errors.js";

/** What a container's token may ask over the socket: calls, and nothing about apps (logs, shells). */
const CONTAINER_MESSAGES = new Set<ClientMessage["t"]>([
  "submit",
  "subscribe",
  "unsubscribe",
  "cancel",
  "gen-ack",
  "ping",
]);

/**
 * One SDK or CLI connection, of a workspace's token or a container's: submits, subscriptions and
 * cancellations of the calls it may make; results and logs pushed back.
 */
export function serveClient(socket: WebSocket, control: ControlPlane, log: Logger, principal: Principal): void {
  const workspace = workspaceOf(principal);
  const caller: Caller = principal.container ? { workspace, env: principal.container.env } : { workspace };
  const send = (message: ServerToClient) => {
    if (socket.readyState === socket.OPEN) socket.send(encodeMessage(message));
  };
  const subscriber: Subscriber = {
    // A replay of a large map's results goes in several messages, each well below MAX_FRAME_BYTES.
    pushResults: (callId, results) => {
      for (const batch of batchesOf(results, (result) => inlineBytes(result.data))) {
        send({ t: "results", callId, results: batch });
      }
    },
    // A generator's values: at most GENERATOR_WINDOW (or GENERATOR_WINDOW_BYTES) per call are out at once.
    pushItems: (callId, items) => send({ t: "items", callId, items }),
    pushLogs: (lines) => send({ t: "logs", lines }),
    endLogs: (appId) => send({ t: "logs-end", appId }),
  };

  /** Shells this connection opened: closed with it, and the only ones it may type into. */
  const shells = new Set<string>();
  const ownShell = (sid: string) => {
    if (!shells.has(sid)) throw new ApiError("NOT_FOUND", `no shell ${sid} on this connection`);
    return sid;
  };

  socket.on("message", async (data: Buffer) => {
    let rid = 0;
    let message: ClientMessage;
    try {
      const decoded = decodeMessage(data) as { rid?: unknown } | undefined;
      // Answer even a malformed request under its own id, so that the caller's wait for it ends.
      if (typeof decoded?.rid === "number") rid = decoded.rid;
      const parsed = ClientMessage.safeParse(decoded);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new Error(`${issue.path.join(".") || "message"}: ${issue.message}`);
      }
      message = parsed.data;
    } catch (error) {
      log.warn({ err: error }, "malformed client message");
      const problem = `malformed message (${(error as Error).message}): is the SDK the same version as the server?`;
      send({ t: "ack", rid, error: { code: "BAD_REQUEST", message: problem } });
      return;
    }
    try {
      if (principal.container && !CONTAINER_MESSAGES.has(message.t)) {
        throw new ApiError("FORBIDDEN", `a container's token cannot send "${message.t}": only calls`);
      }
      switch (message.t) {
        case "submit":
          await control.submit(message, message.subscribe ? subscriber : undefined, caller);
          break;
        case "subscribe":
          await control.subscribe(caller, message.callId, message.fromIdx, subscriber);
          break;
        case "unsubscribe":
          control.unsubscribe(message.callId, subscriber);
          break;
        case "cancel":
          await control.cancel(caller, message.callId);
          break;
        case "gen-ack":
          await control.generatorTaken(caller, message.callId, message.consumed);
          break;
        case "logs":
          await control.subscribeLogs(workspace, message.appId, subscriber, message.resume);
          break;
        case "ping":
          break;
        case "shell-open": {
          const scope = { workspace, env: message.env };
          const secrets = await control.imageSecrets(scope, message.image);
          await control.openShell(message, send, secrets, await control.buildVolumes(scope, message.image, false));
          shells.add(message.sid);
          break;
        }
        case "shell-resize":
          control.shellResize(ownShell(message.sid), message.rows, message.cols);
          break;
        case "shell-input":
          control.shellInput(ownShell(message.sid), message.data, message.eof);
          break;
      }
      send({ t: "ack", rid });
    } catch (error) {
      // The caller's mistakes come as ApiErrors; anything else (the store down, a bug) is the server's.
      const { code, message: text } = apiErrorOf(error as Error);
      if (code === "INTERNAL") log.error({ err: error, t: message.t }, "client request failed");
      send({ t: "ack", rid, error: { code, message: text } });
    }
  });
  socket.on("close", () => {
    control.removeSubscriber(subscriber);
    for (const sid of shells) control.closeShell(sid);
  });
}
