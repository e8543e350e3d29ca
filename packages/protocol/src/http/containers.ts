import { z } from "zod";
import { ColdStart } from "../cold-start.js";
import { route } from "./route.js";

/** A running container as `skiff container list` shows it. */
export const ContainerView = z.object({
  id: z.string(),
  worker: z.string(),
  appId: z.string(),
  function: z.string(),
  /** A class pool's parameter values and a variant's options (JSON, space-separated), or "". */
  pool: z.string(),
  state: z.string(),
  version: z.number(),
  /** How it started and how long each phase took, once it runs (absent from an older worker). */
  start: ColdStart.optional(),
  /** How long after it was ready its first input finished, in ms, once one has (never for web functions). */
  firstInputMs: z.number().int().optional(),
});
export type ContainerView = z.output<typeof ContainerView>;

/** The containers workers run for the caller's workspace. */
export const containerRoutes = {
  list: route({ method: "GET", path: "/v1/containers", response: z.object({ containers: z.array(ContainerView) }) }),
};
