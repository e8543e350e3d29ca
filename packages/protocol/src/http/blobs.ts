import { z } from "zod";
import { route } from "./route.js";

/**
 * Blobs by sha256: bundles, payloads, image files and layers. Each workspace sees those it put (or its
 * functions returned); workers see all. Bodies stream as they are.
 */
export const blobRoutes = {
  /** 200 when the caller may read the blob and the server has it, else 404. */
  has: route({ method: "HEAD", path: "/v1/blobs/:hash", response: "none" }),
  get: route({ method: "GET", path: "/v1/blobs/:hash", response: "bytes" }),
  /** The body is checked against the hash in the path as it streams to disk. */
  put: route({ method: "PUT", path: "/v1/blobs/:hash", body: "bytes", response: z.object({ hash: z.string() }) }),
};
