import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type Stack } from "./stack.js";
import {
  curl,
  curlAvailable,
  deployedStack,
  eventTimes,
  exerciseEcho,
  generatedBody,
  nextMessage,
  openWebSocket,
  textOf,
  uploadChunk,
  webRuntimes,
} from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web-up.ts";
const MiB = 1024 * 1024;
const UPLOAD_MIB = 50;

/**
 * The TCP connections to or from `port` on this host in any state but listening, from /proc/net/tcp(6): one
 * in use, one kept alive, or one closed within the last minute (TIME_WAIT).
 */
function connectionsOf(port: number): string[] {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return ["/proc/net/tcp", "/proc/net/tcp6"]
    .filter((table) => existsSync(table))
    .flatMap((table) => readFileSync(table, "utf8").trim().split("\n").slice(1))
    .filter((line) => {
      const [, local, remote, state] = line.trim().split(/\s+/);
      return state !== "0A" && (local?.endsWith(hex) || remote?.endsWith(hex));
    });
}

/**
 * Web functions on `skiff up`, where server and worker share one process and the gateway connects to a
 * container's web socket itself rather than through the worker's HTTP relay (the path the e2e stack of
 * separate processes never takes): a GET endpoint, a 50 MiB streamed upload, server-sent events and a
 * WebSocket echo, with fetch (undici), curl and ws as clients; a container that dies mid-request is a 502
 * and the next request gets a new one. The worker's relay listens on a port of the test's choosing, and
 * nothing connects to it while these are answered: they did not go through it.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`web functions on skiff up (one process) on ${runtime.name}`, () => {
    let stack: Stack;
    let urls: Record<string, string>;
    let relayPort: number;
    const noRelayConnection = (when: string) => expect(connectionsOf(relayPort), when).toEqual([]);

    beforeAll(async () => {
      relayPort = await freePort();
      ({ stack, urls } = await deployedStack(runtime.name, FIXTURE, {
        up: true,
        serverEnv: { SKIFF_WORKER_WEB_PORT: String(relayPort) },
      }));
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    }, 120_000);

    it("answers a GET endpoint, to fetch and to curl", async () => {
      const base = `${stack.url}/w/main/e2e-web-up`;
      expect(urls).toEqual({ hello: `${base}/hello`, site: `${base}/site` });
      const named = await fetch(`${urls.hello}?name=up`);
      expect(named.status).toBe(200);
      expect(await named.text()).toBe("Hello, up!");
      if (curlAvailable) expect(await curl([`${urls.hello}?name=curl`])).toEqual({ status: 200, body: "Hello, curl!" });
      noRelayConnection("after the GET requests");
    }, 240_000);

    it(`streams a ${UPLOAD_MIB} MiB upload to the handler, which returns its SHA-256, from fetch and from curl`, async () => {
      const expected = createHash("sha256");
      for (let i = 0; i < UPLOAD_MIB; i++) expected.update(uploadChunk(i));
      const answer = { sha256: expected.digest("hex"), bytes: UPLOAD_MIB * MiB };

      const response = await fetch(`${urls.site}/upload`, {
        method: "POST",
        headers: { "content-type": "application/octet-stream" },
        body: generatedBody(UPLOAD_MIB),
        duplex: "half",
      } as RequestInit);
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual(answer);

      if (curlAvailable) {
        const dir = mkdtempSync(join(tmpdir(), "skiff-upload-"));
        try {
          const file = join(dir, "body");
          writeFileSync(file, Buffer.concat(Array.from({ length: UPLOAD_MIB }, (_, i) => uploadChunk(i))));
          const type = ["-H", "content-type: application/octet-stream"];
          const byCurl = await curl(["-X", "POST", ...type, "-T", file, `${urls.site}/upload`]);
          expect(byCurl.status).toBe(200);
          expect(JSON.parse(byCurl.body)).toEqual(answer);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
      noRelayConnection("after the uploads");
    }, 240_000);

    it("streams server-sent events as they are written, to fetch and to curl -N", async () => {
      const response = await fetch(`${urls.site}/events`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toMatch(/text\/event-stream/);
      noRelayConnection("while the event stream is open");
      const times = await eventTimes(textOf(response.body!));
      expect(times).toHaveLength(3);
      // Written 200 ms apart: had the stream been buffered, all three would arrive at once.
      expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(300);

      if (curlAvailable) {
        const child = spawn("curl", ["-sS", "-N", `${urls.site}/events`], { stdio: ["ignore", "pipe", "inherit"] });
        const curlTimes = await eventTimes(child.stdout.setEncoding("utf8"));
        expect(curlTimes).toHaveLength(3);
        expect(curlTimes[2]! - curlTimes[0]!).toBeGreaterThanOrEqual(300);
      }
      noRelayConnection("after the event streams");
    }, 240_000);

    it("takes WebSockets: text, binary and 1 MiB messages, close codes both ways", async () => {
      await exerciseEcho(`${urls.site}/ws`);
      const ws = await openWebSocket(`${urls.site}/ws`);
      ws.send("still there");
      expect((await nextMessage(ws)).data.toString()).toBe("still there");
      noRelayConnection("while a WebSocket is open");
      ws.close(1000);
      expect((await fetch(`${urls.site}/ws`)).status).toBe(426);
      noRelayConnection("after the WebSockets");
    }, 240_000);

    it("reached the containers without the worker's relay, which listens on its port all along", async () => {
      noRelayConnection("after every request above");
      // The relay is there, on the port the worker was given: it refuses a request without its secret.
      const refused = await fetch(`http://127.0.0.1:${relayPort}/containers/none/`);
      expect(refused.status).toBe(401);
      expect(await refused.text()).toContain("skiff-relay-secret");
      // And a connection to it shows where the checks above look.
      expect(connectionsOf(relayPort).length).toBeGreaterThan(0);
    }, 60_000);

    it("answers 502 naming the request when its container dies mid-request; the next request gets a new container", async () => {
      const before = (await (await fetch(`${urls.site}/who`)).json()) as { container: string };
      const died = await fetch(`${urls.site}/die`);
      expect(died.status).toBe(502);
      const requestId = died.headers.get("x-skiff-request-id")!;
      const { error } = (await died.json()) as { error: { code: string; message: string; requestId: string } };
      expect(error).toMatchObject({ code: "CONTAINER_CRASHED", requestId });
      expect(error.message).toContain(requestId);
      const after = await fetch(`${urls.site}/who`);
      expect(after.status).toBe(200);
      expect(((await after.json()) as { container: string }).container).not.toBe(before.container);
      expect((await fetch(`${stack.url}/v1/health`)).ok).toBe(true);
    }, 240_000);
  });
}
