import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, type Stack } from "./stack.js";
import {
  cliListsContainerOf,
  closeOf,
  curl,
  curlAvailable,
  deployedStack,
  dialWebSocket,
  exerciseEcho,
  nextMessage,
  openWebSocket,
  textOf,
  webRuntimes,
} from "./web-helpers.js";

const FIXTURE = "e2e/fixtures/web-server.ts";

/** The `NAME: VALUE` lines a command printed, as a record. */
function printedHeaders(stdout: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const match = /^([A-Za-z_-]+)[:=]\s*(\S+)$/.exec(line.trim());
    if (match) headers[match[1]!] = match[2]!;
  }
  return headers;
}

/** `skiff app logs APP`, running: what it printed so far, and how to stop it. */
async function followLogs(stack: Stack, app: string): Promise<{ printed: () => string; stop: () => void }> {
  const child = spawn(process.execPath, [CLI, "app", "logs", app], {
    cwd: ROOT,
    env: stack.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let printed = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    printed += chunk;
  });
  const following = new Promise<void>((resolve) => {
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      printed += chunk;
      if (printed.includes("following the logs")) resolve();
    });
    child.once("exit", () => resolve());
  });
  await following;
  await sleep(1000); // it asks for the stream just after saying so
  return { printed: () => printed, stop: () => child.kill("SIGKILL") };
}

/**
 * `app.webServer` (a plain node:http server on a port inside the container, reached through the gateway and
 * the worker) and `requiresProxyAuth`, through the real CLI, server, worker and containers.
 */
for (const runtime of webRuntimes) {
  describe.skipIf(!runtime.available)(`web servers and proxy auth on ${runtime.name}`, () => {
    let stack: Stack;
    let urls: Record<string, string>;

    beforeAll(async () => {
      ({ stack, urls } = await deployedStack(runtime.name, FIXTURE));
    }, 400_000);

    afterAll(async () => {
      await stack?.stop();
    });

    it("prints the URL of each web server and web function", () => {
      const base = `${stack.url}/w/main/e2e-web-server`;
      expect(urls).toEqual({ ui: `${base}/ui`, stuck: `${base}/stuck`, guarded: `${base}/guarded` });
    });

    it("reaches a server on the container's port: GET and POST, the path after the label with its query", async () => {
      const got = await fetch(`${urls.ui}/a/b?c=d&e=f`);
      expect(got.status, await got.clone().text()).toBe(200);
      const seen = (await got.json()) as Record<string, unknown>;
      expect(seen).toMatchObject({ method: "GET", url: "/a/b?c=d&e=f", body: "" });
      expect(seen.requestId).toBe(got.headers.get("x-skiff-request-id"));

      const posted = await fetch(`${urls.ui}/form?x=1`, { method: "POST", body: "hello server" });
      expect(posted.status).toBe(200);
      expect(await posted.json()).toMatchObject({ method: "POST", url: "/form?x=1", body: "hello server" });

      expect(((await (await fetch(urls.ui!)).json()) as { url: string }).url).toBe("/");
      if (curlAvailable) {
        const byCurl = await curl(["-X", "PUT", "--data-raw", "by curl", `${urls.ui}/put/it`]);
        expect(byCurl.status).toBe(200);
        expect(JSON.parse(byCurl.body)).toMatchObject({ method: "PUT", url: "/put/it", body: "by curl" });
      }
    }, 240_000);

    it("takes a WebSocket to the server on the container's port: text, binary and 1 MiB messages, close codes both ways", async () => {
      await exerciseEcho(`${urls.ui}/chat?room=1`);
      const ws = await openWebSocket(`${urls.ui}/chat?room=2`);
      ws.send("who");
      const seen = JSON.parse((await nextMessage(ws)).data.toString()) as { url: string; requestId: string };
      expect(seen.url).toBe("/chat?room=2");
      expect(seen.requestId).toMatch(/^[0-9a-f-]{36}$/);
      ws.close();
      await closeOf(ws);
    }, 240_000);

    it("streams the server's response as it writes it", async () => {
      const response = await fetch(`${urls.ui}/stream`);
      expect(response.status).toBe(200);
      const times: number[] = [];
      let text = "";
      for await (const chunk of textOf(response.body!)) {
        text += chunk;
        for (let n = times.length; n < (text.match(/\n/g) ?? []).length; n++) times.push(Date.now());
      }
      expect(text).toBe("line 0\nline 1\nline 2\n");
      // Written 200 ms apart: had the stream been buffered, all three would arrive at once.
      expect(times[2]! - times[0]!).toBeGreaterThanOrEqual(300);
    }, 240_000);

    it("answers 503 naming the startupTimeout when a server never listens, within that timeout, and logs why", async () => {
      const logs = await followLogs(stack, "e2e-web-server");
      try {
        const started = Date.now();
        const response = await fetch(urls.stuck!, { signal: AbortSignal.timeout(60_000) });
        const elapsed = Date.now() - started;
        const text = await response.text();
        expect(response.status, text).toBe(503);
        expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
        const { error } = JSON.parse(text) as { error: { code: string; message: string } };
        expect(error.message).toMatch(/within its startupTimeout \(4s\)/);
        expect(error.message).toMatch(/raise `startupTimeout`/);
        // Its startupTimeout is 4 s: the answer comes then, not at some longer default, and never hangs.
        expect(elapsed).toBeGreaterThanOrEqual(3500);
        expect(elapsed).toBeLessThan(20_000);

        // The logs say what happened: the request, answered 503, and why its container never got ready.
        const why = "the web server did not accept connections on port 8001 within its startupTimeout (4000 ms)";
        for (let i = 0; i < 120 && !logs.printed().includes(why); i++) await sleep(250);
        expect(logs.printed()).toMatch(/\[stuck \S+\] GET \S* 503 \d+ms/);
        expect(logs.printed()).toContain(`${why}: make \`start\` listen on port 8001`);
      } finally {
        logs.stop();
      }
      // The server stays healthy, and the server that works still answers.
      expect((await fetch(`${stack.url}/v1/health`)).ok).toBe(true);
      expect((await fetch(urls.ui!)).status).toBe(200);
    }, 120_000);

    it("lets in only a proxy token's Skiff-Key and Skiff-Secret; others get 401 and start no container", async () => {
      const created = await stack.run(["token", "create", "--name", "e2e-proxy", "--proxy"]);
      expect(created.code, created.stderr).toBe(0);
      const proxy = printedHeaders(created.stdout);
      expect(proxy["Skiff-Key"]).toMatch(/\S/);
      expect(proxy["Skiff-Secret"]).toMatch(/\S/);

      const user = await stack.run(["token", "create", "--name", "e2e-user"]);
      expect(user.code, user.stderr).toBe(0);
      const userToken = printedHeaders(user.stdout);
      expect(userToken.SKIFF_TOKEN_ID).toMatch(/\S/);

      const refused: [string, Record<string, string>][] = [
        ["no headers", {}],
        ["a key without a secret", { "skiff-key": proxy["Skiff-Key"]! }],
        ["a wrong secret", { "skiff-key": proxy["Skiff-Key"]!, "skiff-secret": `${proxy["Skiff-Secret"]}x` }],
        ["a user token", { "skiff-key": userToken.SKIFF_TOKEN_ID!, "skiff-secret": userToken.SKIFF_TOKEN_SECRET! }],
      ];
      for (const [what, headers] of refused) {
        const response = await fetch(urls.guarded!, { headers });
        expect(response.status, what).toBe(401);
        const { error } = (await response.json()) as { error: { code: string; message: string } };
        expect(error.message, what).toMatch(/Skiff-Key/);
      }
      if (curlAvailable) expect((await curl([urls.guarded!])).status).toBe(401);
      // A WebSocket handshake without the headers gets the same 401.
      const socket = await dialWebSocket(urls.guarded!);
      expect(socket).toMatchObject({ status: 401 });
      expect((socket as { body: string }).body).toMatch(/Skiff-Key/);
      // None of them reached a container: the pool never started one.
      expect(await cliListsContainerOf(stack, "guarded")).toBe(false);

      const admitted = await fetch(urls.guarded!, {
        headers: { "Skiff-Key": proxy["Skiff-Key"]!, "Skiff-Secret": proxy["Skiff-Secret"]! },
      });
      expect(admitted.status).toBe(200);
      expect(await admitted.text()).toBe("let in");
      expect(await cliListsContainerOf(stack, "guarded")).toBe(true);
      const ws = await openWebSocket(urls.guarded!, {
        "Skiff-Key": proxy["Skiff-Key"]!,
        "Skiff-Secret": proxy["Skiff-Secret"]!,
      });
      ws.send("socket");
      expect((await nextMessage(ws)).data.toString()).toBe("let in: socket");
      ws.close();
    }, 240_000);

    // Last: it stops the app.
    it("closes an app.web WebSocket with 1001 when its app stops, and cuts a web server's at once", async () => {
      const created = await stack.run(["token", "create", "--name", "e2e-proxy-stop", "--proxy"]);
      expect(created.code, created.stderr).toBe(0);
      const proxy = printedHeaders(created.stdout);
      const web = await openWebSocket(urls.guarded!, {
        "Skiff-Key": proxy["Skiff-Key"]!,
        "Skiff-Secret": proxy["Skiff-Secret"]!,
      });
      web.send("before");
      expect((await nextMessage(web)).data.toString()).toBe("let in: before");
      const server = await openWebSocket(`${urls.ui}/chat`);
      const webClosed = closeOf(web);
      const serverClosed = closeOf(server);
      const started = Date.now();
      const stopped = await stack.run(["app", "stop", "e2e-web-server"]);
      expect(stopped.code, stopped.stderr).toBe(0);
      expect(await webClosed).toEqual({ code: 1001, reason: "the container is stopping" });
      const webMs = Date.now() - started;
      // A server on a port speaks its own protocol: the runner cuts its upgraded connections (1006).
      expect((await serverClosed).code).toBe(1006);
      const serverMs = Date.now() - started;
      expect(webMs).toBeLessThan(10_000);
      expect(serverMs).toBeLessThan(10_000);
      console.log(
        `${runtime.name}: after app stop, app.web socket closed in ${webMs} ms, web server's in ${serverMs} ms`,
      );
    }, 120_000);
  });
}
