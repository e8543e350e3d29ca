export { ApiVolumeSource } from "./api-volume-source.js";
export { BucketMount, type BucketMountOptions } from "./bucket-mount.js";
export { type MemoryVolumeSeed, MemoryVolumeSource, patternBytes } from "./memory-volume-source.js";
export { cleanupStaleRcloneMounts, RcloneMount } from "./rclone-mount.js";
export { VolumeMount, type VolumeMountOptions } from "./volume-mount.js";
export type * from "./volume-source.js";
export { type CommitResult, VolumeView, VolumeViewError } from "./volume-view.js";
