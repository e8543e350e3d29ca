import { z } from "zod";
import { ImageSpec } from "../manifest.js";
import { route } from "./route.js";
import { Done, EnvName, Sha256 } from "./wire.js";

/** Images, built on a worker before a deploy needs them. */
export const imageRoutes = {
  /**
   * Builds an image now, answering its output as text lines; the last line is `ok` (followed by the blob
   * of the OCI layout when `export` is asked) or `error: …`. The image's local files are uploaded first.
   */
  build: route({
    method: "POST",
    path: "/v1/images/build",
    body: z.object({ image: ImageSpec, export: z.boolean().default(false), env: EnvName.default("main") }),
    response: "lines",
  }),
};

/** Image layers workers built, by key: another worker fetches the blob instead of building it again (workers only). */
export const layerRoutes = {
  find: route({ method: "GET", path: "/v1/layers/:key", response: z.object({ digest: z.string() }) }),
  publish: route({ method: "PUT", path: "/v1/layers/:key", body: z.object({ digest: Sha256 }), response: Done }),
};
