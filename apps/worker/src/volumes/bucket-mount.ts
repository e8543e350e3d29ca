import { ListObjectsCommand, S3Client } from "@aws-sdk/client-s3";
import { RcloneMount } from "./rclone-mount.js";

/** An S3-compatible bucket to mount, as a function's `CloudBucketMount` describes it. */
export interface BucketMountOptions {
  /** e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`. */
  endpoint: string;
  bucket: string;
  /** Mount only the keys under this prefix ("train/" shows `train/a.csv` as `a.csv`). */
  keyPrefix?: string;
  region?: string;
  /** Without credentials the bucket is read anonymously. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  readOnly: boolean;
  /** This mount's own directory on the worker (config, cache, mount point); removed on close. */
  dir: string;
  /** More `rclone mount` flags. */
  rcloneFlags?: string[];
}

/**
 * An S3-compatible bucket mounted on the worker with rclone, ready to be bind-mounted into a container at
 * `hostPath`. Writes reach the bucket when the file is closed (or at `flush`/`close`), not at once.
 */
export class BucketMount {
  private constructor(private readonly rclone: RcloneMount) {}

  get hostPath(): string {
    return this.rclone.mountPoint;
  }

  /** The rclone process's id. */
  get pid(): number | undefined {
    return this.rclone.pid;
  }

  static async mount(options: BucketMountOptions): Promise<BucketMount> {
    const prefix = (options.keyPrefix ?? "").replace(/^\/+|\/+$/g, "");
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(options.bucket)) {
      throw new Error(`"${options.bucket}" is not a valid bucket name: use 3-63 characters of a-z, 0-9, '.' and '-'.`);
    }
    const credentials = options.credentials;
    await probe(options, prefix);
    const rclone = await RcloneMount.start({
      remote: {
        type: "s3",
        options: {
          provider: "Other",
          endpoint: options.endpoint,
          region: options.region ?? "us-east-1",
          env_auth: "false",
          force_path_style: "true",
          // The bucket exists (it is the user's); rclone must not try to create it.
          no_check_bucket: "true",
          ...(credentials
            ? {
                access_key_id: credentials.accessKeyId,
                secret_access_key: credentials.secretAccessKey,
                ...(credentials.sessionToken ? { session_token: credentials.sessionToken } : {}),
              }
            : {}),
        },
      },
      remotePath: prefix ? `${options.bucket}/${prefix}` : options.bucket,
      dir: options.dir,
      readOnly: options.readOnly,
      flags: [
        // Others write to the bucket too: look again after a short while. Object times come from the listing, not
        // one HEAD request per object.
        "--dir-cache-time",
        "10s",
        "--use-server-modtime",
        ...(options.rcloneFlags ?? []),
      ],
    });
    return new BucketMount(rclone);
  }

  /** Waits until every closed file has reached the bucket. */
  async flush(): Promise<void> {
    await this.rclone.flush();
  }

  /** Uploads what was closed (unless `flush` is false, e.g. after a crash), then unmounts. Idempotent. */
  async close(options: { flush: boolean } = { flush: true }): Promise<void> {
    try {
      if (options.flush) await this.rclone.flush();
    } finally {
      await this.rclone.stop();
    }
  }
}

/** How long the look at a bucket before mounting it may take. */
const PROBE_MS = 10_000;

/**
 * Lists one key of the bucket under the prefix (ListObjects, version 1: s3rver fails a truncated version-2 list), so that what would make every file operation fail with a
 * bare EIO (the endpoint down, the credentials refused, the bucket missing) fails the mount instead, saying
 * which. Anonymous without credentials: the worker's own AWS settings are never used.
 */
async function probe(options: BucketMountOptions, prefix: string): Promise<void> {
  const client = new S3Client({
    endpoint: options.endpoint,
    region: options.region ?? "us-east-1",
    forcePathStyle: true,
    maxAttempts: 1,
    ...(options.credentials
      ? { credentials: options.credentials }
      : { signer: { sign: async (request) => request }, credentials: { accessKeyId: "", secretAccessKey: "" } }),
  });
  const where = `bucket "${options.bucket}" at ${options.endpoint}`;
  try {
    await client.send(
      new ListObjectsCommand({ Bucket: options.bucket, Prefix: prefix ? `${prefix}/` : undefined, MaxKeys: 1 }),
      {
        abortSignal: AbortSignal.timeout(PROBE_MS),
      },
    );
  } catch (error) {
    const e = error as Error & { Code?: string; $metadata?: { httpStatusCode?: number }; code?: string };
    const code = e.Code ?? e.name;
    if (code === "NoSuchBucket") throw new Error(`${where} does not exist: create it, or fix the bucket's name`);
    const status = e.$metadata?.httpStatusCode;
    if (status === 403 || status === 401 || /AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch/.test(code)) {
      throw new Error(
        `${where} refused ${options.credentials ? "the credentials of its secret" : "anonymous access"} (${code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the secret, and its rights on the bucket`,
      );
    }
    if (e.name === "TimeoutError" || e.name === "AbortError") {
      throw new Error(
        `${where} did not answer within ${PROBE_MS / 1000} s: is the endpoint right, and reachable from the workers?`,
      );
    }
    throw new Error(`${where} could not be listed: ${e.code ?? code}: ${e.message}`);
  } finally {
    client.destroy();
  }
}
