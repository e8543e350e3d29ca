import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeMessage, encodeMessage, FrameReader, writeFrames } from "@skiff/protocol/frame";
import * as esbuild from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const SDK = JSON.stringify(join(import.meta.dirname, "../../index.ts"));
const USER_CODE = `import { App } from ${SDK};
export const app = new App("web");
export const site = app.web({ concurrent: { maxInputs: 4 } }, async (request) => {
  const url = new URL(request.url);
  if (url.pathname === "/slow") await new Promise((resolve) => setTimeout(resolve, 300));
  return new Response("site " + url.pathname);
});
export const plain = app.function({}, (x) => x);
`;

/** The runner in a process of its own, as in a container, with a worker's side of runner.sock played here. */
describe("the runner of a web function", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "skiff-web-runner-"));
    await writeFile(join(dir, "user.ts"), USER_CODE);
    const common = { bundle: true, format: "esm", platform: "node", logLevel: "silent" } as const;
    // As scripts/build.mjs: the bundled CommonJS packages require node's modules.
    const banner = {
      js: "import { createRequire as __skiffCreateRequire } from 'node:module'; const require = __skiffCreateRequire(import.meta.url);",
    };
    await esbuild.build({ ...common, entryPoints: [join(dir, "user.ts")], outfile: join(dir, "bundle.mjs") });
    await esbuild.build({
      ...common,
      entryPoints: [join(import.meta.dirname, "../main.ts")],
      outfile: join(dir, "runner.mjs"),
      external: ["cbor-extract"],
      banner,
    });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts the runner for `fn`; resolves with the messages it sends and its process. */
  const start = async (fn: string, webSocket: string | undefined) => {
    const socketPath = join(dir, `runner-${fn}.sock`);
    const messages: { t: string; error?: Uint8Array }[] = [];
    let connection!: Socket;
    const connected = new Promise<void>((resolve) => {
      const server: Server = createServer((socket) => {
        connection = socket;
        const reader = new FrameReader();
        socket.on("data", (chunk: Buffer) => {
          for (const frame of reader.push(chunk)) messages.push(decodeMessage(frame) as { t: string });
        });
        writeFrames(socket, [encodeMessage({ t: "hello", token: "t" })]);
        server.close();
        resolve();
      });
      server.listen(socketPath);
    });
    const child: ChildProcess = spawn(process.execPath, [join(dir, "runner.mjs")], {
      env: {
        PATH: process.env.PATH,
        SKIFF_SOCKET: socketPath,
        SKIFF_BUNDLE: join(dir, "bundle.mjs"),
        SKIFF_FUNCTION: fn,
        SKIFF_MAX_INPUTS: "4",
        ...(webSocket ? { SKIFF_WEB_SOCKET: webSocket } : {}),
      },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    let ended = false;
    void exited.then(() => {
      ended = true;
    });
    await Promise.race([connected, exited]);
    const until = async (t: string) => {
      for (let i = 0; i < 200 && !ended && !messages.some((m) => m.t === t); i++) {
        await new Promise((r) => setTimeout(r, 25));
      }
      return messages.find((m) => m.t === t);
    };
    return { messages, until, exited, send: (m: object) => writeFrames(connection, [encodeMessage(m)]) };
  };

  const get = (socketPath: string, path: string) =>
    new Promise<string>((resolve, reject) => {
      request({ socketPath, path, agent: false }, async (res) => {
        let text = "";
        for await (const chunk of res) text += chunk;
        resolve(text);
      })
        .on("error", reject)
        .end();
    });

  it("serves on SKIFF_WEB_SOCKET once ready, never asks for inputs, and ends after requests in flight", async () => {
    const webSocket = join(dir, "web.sock");
    const runner = await start("site", webSocket);
    expect(await runner.until("ready")).toBeDefined();
    expect(await get(webSocket, "/hello?x=1")).toBe("site /hello");
    const slow = get(webSocket, "/slow");
    await new Promise((resolve) => setTimeout(resolve, 50));
    runner.send({ t: "shutdown" });
    expect(await slow).toBe("site /slow");
    expect(await runner.exited).toBe(0);
    expect(runner.messages.map((m) => m.t)).toEqual(["ready"]);
  });

  it("fails the start of a web function the worker gave no web socket, and of a plain function given one", async () => {
    const web = await start("site", undefined);
    expect(await web.until("init-failed")).toBeDefined();
    expect(await web.exited).toBe(1);
    const plain = await start("plain", join(dir, "plain.sock"));
    expect(await plain.until("init-failed")).toBeDefined();
    expect(await plain.exited).toBe(1);
  });
});
