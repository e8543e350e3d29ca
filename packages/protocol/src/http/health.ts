import { z } from "zod";
import { route } from "./route.js";

/** Whether the server answers, and how many workers it has: the one route that needs no token. */
export const healthRoute = route({
  method: "GET",
  path: "/v1/health",
  response: z.object({ ok: z.literal(true), workers: z.number() }),
});
