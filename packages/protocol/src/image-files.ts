import type { ImageSpec } from "./manifest.js";

/** The blobs an image refers to (archives of the caller's files): copied layers and start-time mounts. */
export function imageArchives(image: ImageSpec): string[] {
  return [
    ...image.layers.flatMap(({ step }) => (step.kind === "copy" ? [step.archive] : [])),
    ...image.mounts.map((mount) => mount.archive),
  ];
}

/** The keys of the secret an image's registry login comes from. */
export const REGISTRY_LOGIN_KEYS = ["REGISTRY_USERNAME", "REGISTRY_PASSWORD"] as const;

/** The secrets an image's steps run with (see ImageStep), each once. */
export function buildSecretsOf(image: ImageSpec): string[] {
  return [...new Set(image.layers.flatMap(({ step }) => ("secrets" in step ? (step.secrets ?? []) : [])))];
}

/** The secret an image's registry base logs in with, if it names one. */
export function registrySecretOf(image: ImageSpec): string | undefined {
  return image.base === "debian-bookworm" ? undefined : image.base.secret;
}
