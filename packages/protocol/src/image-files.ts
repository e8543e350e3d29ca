import type { ImageSpec } from "./manifest.js";

/** The blobs an image refers to (archives of the caller's files): copied layers and start-time mounts. */
export function imageArchives(image: ImageSpec): string[] {
  return [
    ...image.layers.flatMap(({ step }) => (step.kind === "copy" ? [step.archive] : [])),
    ...image.mounts.map((mount) => mount.archive),
  ];
}
