import { mkdtemp, rm } from "node:fs/promises";
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { servePort, waitForPort } from "./serve-port.js";

describe("servePort", () => {
  it("waits for the port, then pipes each connection of the Unix socket to it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-port-"));
    const server = createServer((req, res) => res.end(`${req.method} ${req.url} ${req.headers.upgrade ?? ""}`));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      await waitForPort(port);
      const socketPath = join(dir, "web.sock");
      const serving = await servePort({ socketPath, port });
      const body = await new Promise<string>((resolve, reject) => {
        request({ socketPath, path: "/x?y=1", method: "PUT", agent: false }, async (res) => {
          let text = "";
          for await (const chunk of res) text += chunk;
          resolve(text);
        })
          .on("error", reject)
          .end();
      });
      expect(body).toBe("PUT /x?y=1 ");
      await serving.close();
    } finally {
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("lets a request in flight finish when it closes, but cuts WebSockets at once", async () => {
    const dir = await mkdtemp(join(tmpdir(), "skiff-port-"));
    let finish: () => void = () => {};
    const server = createServer((_req, res) => {
      res.write("started ");
      finish = () => res.end("finished");
    });
    const sockets = new WebSocketServer({ server });
    sockets.on("connection", (ws) => ws.on("message", (data) => ws.send(data)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const socketPath = join(dir, "web.sock");
      const serving = await servePort({ socketPath, port });
      const ws = new WebSocket(`ws+unix://${socketPath}:/chat`);
      await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
      ws.send("hi");
      expect(String(await new Promise((resolve) => ws.once("message", resolve)))).toBe("hi");
      const body = new Promise<string>((resolve, reject) => {
        request({ socketPath, path: "/slow", agent: false }, async (res) => {
          let text = "";
          for await (const chunk of res) text += chunk;
          resolve(text);
        })
          .on("error", reject)
          .end();
      });
      const cut = new Promise<number>((resolve) => ws.once("close", resolve));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const closed = serving.close();
      expect(await cut).toBe(1006);
      // The request in flight meanwhile still gets its whole answer.
      finish();
      expect(await body).toBe("started finished");
      await closed;
    } finally {
      for (const client of sockets.clients) client.terminate();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
