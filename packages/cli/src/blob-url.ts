import { fileURLToPath } from "node:url";
import { z } from "zod";

/** Where the server keeps blobs: a directory, or an S3 bucket (under a key prefix) and how to reach it. */
export type BlobLocation =
  | { kind: "fs"; root: string }
  | {
      kind: "s3";
      bucket: string;
      /** `""`, or a prefix ending in `/` that every key starts with. */
      keyPrefix: string;
      endpoint?: string;
      region?: string;
      forcePathStyle: boolean;
    };

const VALID =
  "use s3://BUCKET/PREFIX?endpoint=http://127.0.0.1:9000&region=us-east-1&forcePathStyle=true (PREFIX and the query optional; credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or file:///absolute/path";
/** S3's rule for bucket names. */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const S3_OPTIONS = new Set(["endpoint", "region", "forcePathStyle"]);

/**
 * Reads SKIFF_BLOB_URL: `s3://BUCKET/PREFIX?endpoint=…&region=…&forcePathStyle=…` or `file:///path`.
 * With an endpoint (an S3-compatible server), the region defaults to us-east-1 and path-style URLs to true;
 * without one (AWS), the AWS SDK finds the region (AWS_REGION, the AWS profile).
 * @example
 * parseBlobUrl("s3://skiff-blobs/team-a?region=eu-west-1");
 * // { kind: "s3", bucket: "skiff-blobs", keyPrefix: "team-a/", region: "eu-west-1", forcePathStyle: false }
 */
export function parseBlobUrl(text: string): BlobLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`"${text}" is not a URL: ${VALID}`);
  }
  if (url.protocol === "file:") {
    if (url.host || url.search) throw new Error(`a file URL names a local directory and nothing else: ${VALID}`);
    return { kind: "fs", root: fileURLToPath(url) };
  }
  if (url.protocol !== "s3:") throw new Error(`"${url.protocol}" is not a blob store scheme: ${VALID}`);
  if (url.username || url.password)
    throw new Error(`credentials do not go in the URL, but in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: ${VALID}`);
  if (!BUCKET.test(url.host))
    throw new Error(`"${url.host}" is not a bucket name (3 to 63 lowercase letters, digits, dots, hyphens): ${VALID}`);
  for (const name of url.searchParams.keys())
    if (!S3_OPTIONS.has(name)) throw new Error(`unknown option "${name}": ${VALID}`);

  const endpoint = url.searchParams.get("endpoint") ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint))
    throw new Error(`the endpoint "${endpoint}" is not an http(s) URL: ${VALID}`);
  const pathStyle = url.searchParams.get("forcePathStyle");
  if (pathStyle !== null && pathStyle !== "true" && pathStyle !== "false")
    throw new Error(`forcePathStyle is true or false, not "${pathStyle}": ${VALID}`);
  const region = url.searchParams.get("region") || (endpoint ? "us-east-1" : undefined);
  const prefix = decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, "");
  return {
    kind: "s3",
    bucket: url.host,
    keyPrefix: prefix ? `${prefix}/` : "",
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    // An S3-compatible server seldom has a DNS name per bucket; AWS wants virtual-hosted URLs.
    forcePathStyle: pathStyle === null ? endpoint !== undefined : pathStyle === "true",
  };
}

/** SKIFF_BLOB_URL as a zod schema: empty reads as unset (the blob directory under SKIFF_HOME). */
export const BlobUrl = z.string().transform((text, context): BlobLocation | undefined => {
  if (text === "") return undefined;
  try {
    return parseBlobUrl(text);
  } catch (error) {
    context.addIssue({ code: z.ZodIssueCode.custom, message: (error as Error).message });
    return z.NEVER;
  }
});
