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
