import type { ContainerSpec } from "../runtime/types.js";
import type { BuiltImage } from "./built-image.js";
import { PATH } from "./steps.js";

/**
 * What a container of a built image takes from it: the base and the layers, the image's environment
 * (then `env`, then PATH and HOME), its working directory and user, and the Node build and the image's
 * mounts. The caller adds the id, the command, its own mounts and limits.
 */
export function imageContainerSpec(
  prepared: { rootfs: string; nodeDir: string; image: BuiltImage },
  env: Record<string, string> = {},
): Pick<ContainerSpec, "rootfs" | "layers" | "env" | "cwd" | "user" | "mounts"> {
  const { image } = prepared;
  return {
    rootfs: prepared.rootfs,
    layers: image.layers,
    env: { ...image.env, ...env, PATH, HOME: image.user?.home ?? "/root" },
    cwd: image.cwd,
    ...(image.user ? { user: { uid: image.user.uid, gid: image.user.gid } } : {}),
    mounts: [{ source: prepared.nodeDir, target: "/.skiff/node", readonly: true }, ...image.mounts],
  };
}
