import { z } from "zod";
import { ClassShape } from "../manifest.js";
import { route } from "./route.js";

const LOOKUP_USAGE = "pass ?app=APP&name=FUNCTION";
const Required = z.string({ required_error: LOOKUP_USAGE }).min(1, LOOKUP_USAGE);

/** The autoscaler settings of a function, as changed at runtime. */
export const AutoscalerSettings = z.object({
  minContainers: z.number().int().min(0),
  maxContainers: z.number().int().min(1),
  bufferContainers: z.number().int().min(0),
  scaledownWindowMs: z.number().int().min(0),
});
export type AutoscalerSettings = z.output<typeof AutoscalerSettings>;

/** Functions and classes of running apps. */
export const functionRoutes = {
  /** A function or class by app and name in `?env=`: its id and, for a class, its shape. */
  lookup: route({
    method: "GET",
    path: "/v1/functions/lookup",
    query: z.object({ app: Required, name: Required, env: z.string().optional() }),
    response: z.object({
      functionId: z.string(),
      kind: z.enum(["function", "class"]),
      cls: ClassShape.optional(),
      /** An async generator function: call it with `.remoteGen`. */
      generator: z.boolean().optional(),
    }),
  }),
  /** Changes some of a function's autoscaler settings; answers all of them. */
  updateAutoscaler: route({
    method: "POST",
    path: "/v1/functions/:id/autoscaler",
    body: AutoscalerSettings.partial(),
    response: AutoscalerSettings,
  }),
};
