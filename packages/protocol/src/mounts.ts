import { z } from "zod";
import { RESOURCE_NAME } from "./constants.js";
import { BUCKET_NAME } from "./mount-rules.js";

const MountPath = z.string().startsWith("/");

/** A volume of the app's environment, mounted at `path`: the container's writes are its own until a commit. */
export const VolumeMountSpec = z
  .object({
    kind: z.literal("volume"),
    path: MountPath,
    name: z.string().regex(RESOURCE_NAME),
    readOnly: z.boolean().default(false),
    /** Made at deploy when it is not there. */
    createIfMissing: z.boolean().default(false),
  })
  .strict();
export type VolumeMountSpec = z.infer<typeof VolumeMountSpec>;

/** An S3-compatible bucket (under a key prefix) mounted at `path`; credentials from a named secret. */
export const BucketMountSpec = z
  .object({
    kind: z.literal("bucket"),
    path: MountPath,
    bucket: z.string().regex(BUCKET_NAME, "bucket names use 3-63 characters of a-z, 0-9, '.' and '-'"),
    endpoint: z.string().url(),
    keyPrefix: z.string().optional(),
    region: z.string().min(1).optional(),
    /** A secret of the app's environment with BUCKET_SECRET_KEYS; without one the bucket is read anonymously. */
    secret: z.string().regex(RESOURCE_NAME).optional(),
    readOnly: z.boolean().default(false),
  })
  .strict();
export type BucketMountSpec = z.infer<typeof BucketMountSpec>;

export const MountSpec = z.discriminatedUnion("kind", [VolumeMountSpec, BucketMountSpec]);
export type MountSpec = z.infer<typeof MountSpec>;

/** A bucket mount's credentials, as the worker gets them (from the mount's secret, at start). */
export const BucketCredentials = z.object({
  accessKeyId: z.string().min(1),
  secretAccessKey: z.string().min(1),
  sessionToken: z.string().min(1).optional(),
});
export type BucketCredentials = z.infer<typeof BucketCredentials>;
