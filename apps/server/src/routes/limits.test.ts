import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsBlobStore } from "@skiff/blob";
import { openPglite, Store } from "@skiff/store";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { sendStream } from "../../../../e2e/send-stream.js";
import { type RunningServer, startServer } from "../server.js";
import { BODY_LIMITS } from "./limits.js";

describe("request bodies and routes", () => {
  let dir: string;
  let server: RunningServer;
  let auth: Record<string, string>;
  let blobs: FsBlobStore;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-limits-"));
    blobs = new FsBlobStore(join(dir, "blobs"));
    server = await startServer({
      store: new Store(await openPglite()),
      blobs,
      log: pino({ level: "silent" }),
    });
    const workspace = await server.tokens.createWorkspace("a");
    const token = await server.tokens.create({ kind: "user", name: "a", workspace: workspace.id });
    auth = { authorization: `Bearer ${token.credential}` };
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("refuses a JSON body over its limit with 413 and the limit, declared or not", async () => {
    const declared = await sendStream(
      server.url,
      "POST",
      "/v1/apps",
      { ...auth, "content-type": "application/json", "content-length": String(64 * 1024 * 1024) },
      64 * 1024 * 1024,
    );
    expect(declared.status).toBe(413);
    expect(JSON.parse(declared.body)).toEqual({
      error: { code: "PAYLOAD_TOO_LARGE", message: expect.stringMatching(/8 MiB/), limit: BODY_LIMITS.manifest },
    });
    const chunked = await sendStream(
      server.url,
      "POST",
      "/v1/tokens",
      { ...auth, "content-type": "application/json" },
      16 * 1024 * 1024,
    );
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", limit: BODY_LIMITS.json });
  });

  it("stores a streamed blob only when its bytes match the hash and the declared size", async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 5, 120);
    const hash = createHash("sha256").update(bytes).digest("hex");
    const put = (body: Buffer, headers: Record<string, string> = {}) =>
      fetch(new URL(`/v1/blobs/${hash}`, server.url), { method: "PUT", headers: { ...auth, ...headers }, body });
    const wrong = await put(Buffer.alloc(bytes.length, 121));
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: { code: "BAD_REQUEST", message: /do not match/ } });
    const tooBig = await sendStream(
      server.url,
      "PUT",
      `/v1/blobs/${hash}`,
      { ...auth, "content-length": String(BODY_LIMITS.blob + 1) },
      8 * 1024 * 1024,
    );
    expect(tooBig.status).toBe(413);
    expect(JSON.parse(tooBig.body).error).toMatchObject({ code: "PAYLOAD_TOO_LARGE", limit: BODY_LIMITS.blob });
    expect((await fetch(new URL(`/v1/blobs/${hash}`, server.url), { method: "HEAD", headers: auth })).status).toBe(404);

    expect((await put(bytes)).status).toBe(200);
    // A HEAD says the blob is there without reading it (a GiB blob would be read and hashed whole).
    const read = vi.spyOn(blobs, "getStream");
    const head = await fetch(new URL(`/v1/blobs/${hash}`, server.url), { method: "HEAD", headers: auth });
    expect(head.status).toBe(200);
    expect(read).not.toHaveBeenCalled();
    read.mockRestore();
    const back = await fetch(new URL(`/v1/blobs/${hash}`, server.url), { headers: auth });
    expect(back.headers.get("content-length")).toBe(String(bytes.length));
    expect(Buffer.compare(Buffer.from(await back.arrayBuffer()), bytes)).toBe(0);
  });

  it("answers an unknown route with a JSON 404, and a wrong method with a 405 naming the right ones", async () => {
    const missing = await fetch(new URL("/v1/nope", server.url), { headers: auth });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({
      error: { code: "NOT_FOUND", message: expect.stringMatching(/\/v1\/nope/) },
    });

    const wrong = await fetch(new URL("/v1/apps/x/stop", server.url), { method: "DELETE", headers: auth });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect(await wrong.json()).toEqual({
      error: { code: "METHOD_NOT_ALLOWED", message: "DELETE is not a method of /v1/apps/x/stop: use POST" },
    });
    const blob = await fetch(new URL(`/v1/blobs/${"0".repeat(64)}`, server.url), { method: "POST", headers: auth });
    expect(blob.status).toBe(405);
    expect(blob.headers.get("allow")).toBe("GET, HEAD, PUT");

    const socket = new WebSocket(new URL("/v1/nope", server.url.replace("http", "ws")), { headers: auth });
    const refused = await new Promise<{ status: number; body: string }>((resolve) => {
      socket.on("unexpected-response", (_request, response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.on("error", () => resolve({ status: 0, body: "" }));
    });
    expect(refused.status).toBe(404);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "NOT_FOUND", message: /\/v1\/client/ } });
  });
});
