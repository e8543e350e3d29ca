// The plain Hono server of the web bench, in a process of its own as Skiff's server is (dist/bench-hono-server.mjs):
// @hono/node-server on 127.0.0.1, a free port, serving bench/apps/hello-hono.ts. Prints `listening PORT`.
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { helloHono } from "../apps/hello-hono.js";

const server = serve({ fetch: helloHono.fetch, hostname: "127.0.0.1", port: 0 }, (info: AddressInfo) => {
  process.stdout.write(`listening ${info.port}\n`);
});
process.once("SIGTERM", () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
