import { Hono } from "hono";

/**
 * The handler of the web bench, served alike by a plain Hono server and by Skiff (`app.web`): GET `/`
 * answers a small JSON body naming the container that answered (null outside Skiff), which lets the bench
 * count the containers that served a run.
 */
export const helloHono = new Hono().get("/", (c) =>
  c.json({ hello: "world", container: process.env.SKIFF_CONTAINER_ID ?? null }),
);
