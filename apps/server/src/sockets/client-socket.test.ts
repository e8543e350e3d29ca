import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { decodeMessage, encodeMessage, type ServerToClient } from "@skiff/protocol";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import type { ControlPlane } from "../engine/control-plane.js";
import { ApiError } from "../errors.js";
import { serveClient } from "./client-socket.js";

/** A socket that records what the server sends, and a control plane whose submit does what `submit` says. */
function connect(submit: () => Promise<void>) {
  const sent: ServerToClient[] = [];
  const socket = Object.assign(new EventEmitter(), {
    OPEN: 1,
    readyState: 1,
    send: (data: Uint8Array) => sent.push(decodeMessage(data) as ServerToClient),
  });
  const control = { submit, removeSubscriber: () => {} };
  const principal = { tokenId: "t", kind: "user" as const, workspace: "default", admin: false };
  serveClient(socket as unknown as WebSocket, control as unknown as ControlPlane, pino({ level: "silent" }), principal);
  const request = async (message: unknown) => {
    socket.emit("message", Buffer.from(encodeMessage(message)));
    await new Promise((resolve) => setImmediate(resolve));
    return sent.at(-1);
  };
  return { request };
}

const submit = (rid: number) => ({
  t: "submit",
  rid,
  functionId: "fu-1",
  callId: randomUUID(),
  total: 1,
  subscribe: false,
  inputs: [{ idx: 0, args: { inline: new Uint8Array([0x80]) } }],
});

describe("client socket", () => {
  it("answers a malformed request under its own id, naming the problem", async () => {
    const { request } = connect(async () => {});
    const ack = await request({ ...submit(7), callId: "not-a-uuid" });
    expect(ack).toMatchObject({ t: "ack", rid: 7, error: { code: "BAD_REQUEST" } });
    expect(ack?.t === "ack" && ack.error?.message).toMatch(/callId: Invalid uuid/);
  });

  it("reports the caller's mistakes with their own code and the server's trouble as INTERNAL", async () => {
    const refused = connect(async () => {
      throw new ApiError("NOT_FOUND", "no function fu-1");
    });
    expect(await refused.request(submit(1))).toMatchObject({
      rid: 1,
      error: { code: "NOT_FOUND", message: "no function fu-1" },
    });
    const broken = connect(async () => {
      throw new Error("connection to the store was lost");
    });
    expect(await broken.request(submit(2))).toMatchObject({ rid: 2, error: { code: "INTERNAL" } });
  });

  it("acknowledges what it accepted", async () => {
    const { request } = connect(async () => {});
    expect(await request(submit(3))).toEqual({ t: "ack", rid: 3 });
  });
});
