import http from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { isMain, summarize } from "./stats.js";

/** Options for {@link honoPostLatency}. */
export interface HonoPostOptions {
  /** Measured requests. */
  requests?: number;
  /** Unmeasured requests sent first. */
  warmup?: number;
  /** "http": node:http with a keep-alive Agent (lower latency); "fetch": Node's built-in fetch (undici). */
  client?: "http" | "fetch";
}

type Post = (body: string) => Promise<string>;

function httpClient(port: number): { post: Post; close: () => void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const post: Post = (body) =>
    new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/echo",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          let data = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            data += chunk;
          });
          res.on("end", () => resolve(data));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}

function fetchClient(port: number): { post: Post; close: () => void } {
  const url = `http://127.0.0.1:${port}/echo`;
  const post: Post = async (body) => {
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body });
    return res.text();
  };
  return { post, close: () => {} };
}

/**
 * Latency of a plain Hono POST round trip on loopback: a Hono app on @hono/node-server (127.0.0.1,
 * random port) whose one route parses a small JSON body and returns JSON, driven sequentially by a
 * keep-alive client in the same process. Figures are milliseconds per request.
 */
export async function honoPostLatency({
  requests = 2000,
  warmup = 200,
  client = "http",
}: HonoPostOptions = {}): Promise<{ p50Ms: number; p99Ms: number; meanMs: number }> {
  const app = new Hono();
  app.post("/echo", async (c) => {
    const body = await c.req.json<{ n: number }>();
    return c.json({ ok: true, n: body.n + 1 });
  });
  const server = await new Promise<http.Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s as http.Server));
  });
  const { port } = server.address() as AddressInfo;
  const { post, close } = client === "http" ? httpClient(port) : fetchClient(port);
  const samples: number[] = [];
  try {
    for (let i = 0; i < warmup + requests; i++) {
      const start = process.hrtime.bigint();
      const reply = await post(JSON.stringify({ n: i, name: "skiff" }));
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if ((JSON.parse(reply) as { n: number }).n !== i + 1) throw new Error(`bad reply: ${reply}`);
      if (i >= warmup) samples.push(ms);
    }
  } finally {
    close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  const s = summarize(samples);
  return { p50Ms: s.p50, p99Ms: s.p99, meanMs: s.mean };
}

if (isMain(import.meta.url)) {
  for (const client of ["http", "fetch"] as const) {
    console.log(client, await honoPostLatency({ client }));
  }
}
