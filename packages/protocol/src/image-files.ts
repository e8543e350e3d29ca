import type { BuildVolume, ImageSpec } from "./manifest.js";

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

/**
 * The volumes an image's steps mount while they run, each once by name (made when missing if any step
 * says so).
 */
export function buildVolumesOf(image: ImageSpec): { name: string; createIfMissing: boolean }[] {
  const byName = new Map<string, boolean>();
  for (const { step } of image.layers) {
    for (const volume of step.kind === "run" ? (step.volumes ?? []) : ([] as BuildVolume[])) {
      byName.set(volume.name, (byName.get(volume.name) ?? false) || volume.createIfMissing);
    }
  }
  return [...byName].map(([name, createIfMissing]) => ({ name, createIfMissing }));
}

/** The secret an image's registry base logs in with, if it names one. */
export function registrySecretOf(image: ImageSpec): string | undefined {
  return image.base === "debian-bookworm" ? undefined : image.base.secret;
}
