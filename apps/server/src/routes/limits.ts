import { formatBytes } from "@skiff/blob";
import { ApiError } from "../errors.js";

/**
 * How many bytes a request body may have. JSON bodies are read whole, so they stay small; blobs (bundles,
 * payloads, image files and layers) stream to disk and are bounded by what one may hold.
 */
export const BODY_LIMITS = {
  /** Every JSON route but those below. */
  json: 1024 * 1024,
  /** Routes that carry an app's manifest or an image's spec (`/v1/apps`, `/v1/deploy`, `/v1/images/build`). */
  manifest: 8 * 1024 * 1024,
  /** `PUT /v1/blobs/:hash`: a call's payload may be 1 GiB; image layers and local files can be larger. */
  blob: 4 * 1024 * 1024 * 1024,
} as const;

/** The 413 for a body over `limit` bytes; the limit travels in the error body too. */
export function tooLarge(limit: number, what = "the request body"): ApiError {
  return new ApiError(
    "PAYLOAD_TOO_LARGE",
    `${what} is larger than this route takes (${formatBytes(limit)}, ${limit} bytes): send less${
      limit === BODY_LIMITS.blob ? "" : ", and large data as a blob (PUT /v1/blobs/SHA256)"
    }`,
    { limit },
  );
}

/** The declared size of a request (Content-Length), refused at once when it is over `limit`. */
export function declaredSize(request: Request, limit: number): number | undefined {
  const header = request.headers.get("content-length");
  if (header === null) return undefined;
  const size = Number(header);
  if (!Number.isSafeInteger(size) || size < 0)
    throw new ApiError("BAD_REQUEST", `Content-Length "${header}" is not a size`);
  if (size > limit) throw tooLarge(limit);
  return size;
}
