import { BUCKET_NAME } from "@skiff/protocol/mount-rules";
import type { BucketMountSpec } from "@skiff/protocol/mounts";
import { isSecret, type Secret } from "./secret.js";

const BUCKET = Symbol.for("skiff.bucket-mount");

export interface CloudBucketMountOptions {
  /** The S3-compatible endpoint, e.g. `http://127.0.0.1:9000`; default AWS S3 in `region`. */
  endpoint?: string;
  /** Default `us-east-1`. */
  region?: string;
  /**
   * A secret of the app's environment holding AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
   * AWS_SESSION_TOKEN if the store wants one), made with `skiff secret create`; without one the bucket is
   * read anonymously.
   */
  secret?: Secret;
  /** Show only the keys under this prefix ("train/" shows `train/a.csv` as `a.csv`). */
  keyPrefix?: string;
  /** A write inside the container then fails with EROFS. Default false. */
  readOnly?: boolean;
}

/** A bucket to mount into a function's containers (see `CloudBucketMount`). */
export interface CloudBucketMount {
  readonly [BUCKET]: true;
  readonly bucket: string;
  /** @internal */
  toMountSpec(path: string): BucketMountSpec;
}

/**
 * An S3-compatible bucket mounted into a function's containers at a path: its objects are files, read as
 * they are used. The bucket is the truth: a file a container writes and closes is uploaded then (no commit,
 * no versions), and other containers see it within about 10 seconds.
 * @example
 * const raw = app.function(
 *   { volumes: { "/data": CloudBucketMount("datasets", { endpoint: "http://127.0.0.1:9000", secret: Secret.fromName("s3"), keyPrefix: "train/", readOnly: true }) } },
 *   async () => (await readdir("/data")).length,
 * );
 */
export function CloudBucketMount(bucket: string, options: CloudBucketMountOptions = {}): CloudBucketMount {
  const where = `CloudBucketMount("${bucket}")`;
  if (typeof bucket !== "string" || !BUCKET_NAME.test(bucket)) {
    throw new RangeError(`${where}: not a bucket name (3-63 characters of a-z, 0-9, '.' and '-')`);
  }
  const known = ["endpoint", "region", "secret", "keyPrefix", "readOnly"];
  const unknown = Object.keys(options).find((key) => !known.includes(key));
  if (unknown) throw new TypeError(`${where}: unknown option "${unknown}"; known options: ${known.join(", ")}`);
  const region = options.region ?? "us-east-1";
  const endpoint = options.endpoint ?? `https://s3.${region}.amazonaws.com`;
  if (!/^https?:\/\/[^/]+/.test(endpoint)) {
    throw new RangeError(
      `${where}: endpoint must be an http(s) URL such as "http://127.0.0.1:9000", not "${endpoint}"`,
    );
  }
  const secret = options.secret;
  if (secret !== undefined && !(isSecret(secret) && "name" in secret.ref)) {
    throw new TypeError(`${where}: secret must be Secret.fromName(...) (a secret stored with \`skiff secret create\`)`);
  }
  const keyPrefix = options.keyPrefix?.replace(/^\/+/, "");
  if (keyPrefix !== undefined && (keyPrefix.split("/").includes("..") || keyPrefix.includes("\0"))) {
    throw new RangeError(`${where}: keyPrefix "${options.keyPrefix}" cannot hold ".." or a NUL byte`);
  }
  return {
    [BUCKET]: true,
    bucket,
    toMountSpec: (path) => ({
      kind: "bucket",
      path,
      bucket,
      endpoint,
      region,
      readOnly: options.readOnly ?? false,
      ...(keyPrefix ? { keyPrefix } : {}),
      ...(secret && "name" in secret.ref ? { secret: secret.ref.name } : {}),
    }),
  };
}

/** Whether a value is a CloudBucketMount, from any copy of the SDK. */
export function isCloudBucketMount(value: unknown): value is CloudBucketMount {
  return typeof value === "object" && value !== null && (value as { [BUCKET]?: boolean })[BUCKET] === true;
}
