import { randomUUID } from "node:crypto";
import { mkdir, readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { runChecked, runCommand } from "../runtime/command.js";
import type { BuiltImage } from "./built-image.js";
import { PATH } from "./steps.js";

/**
 * The image as an OCI layout (a tar of it): one layer flattening the base, the layers, the files
 * mounted at start and the Node build (under /.skiff/node, on PATH), with the image's environment,
 * working directory and user. Other tools run it (`skopeo copy oci:DIR:latest docker://…`).
 */
export async function exportLayout(
  cacheDir: string,
  rootfs: string,
  nodeDir: string,
  image: BuiltImage,
  log: (line: string) => void,
): Promise<Uint8Array> {
  const scratch = join(cacheDir, "exports", randomUUID());
  const merged = join(scratch, "merged");
  await mkdir(merged, { recursive: true });
  try {
    log("image export: flattening the layers");
    // Read-only overlay of every layer (overlayfs wants two lowers or more without an upper).
    const lowers = [rootfs, ...image.layers];
    if (lowers.length > 1)
      await runChecked("mount", [
        "-t",
        "overlay",
        "overlay",
        "-o",
        `ro,lowerdir=${[...lowers].reverse().join(":")}`,
        merged,
      ]);
    const top = lowers.length > 1 ? merged : rootfs;
    const layer = join(scratch, "layer.tar");
    await runChecked("tar", ["-C", top, "-cf", layer, "."]);
    await runChecked("tar", ["-C", nodeDir, "--transform", "s,^\\.,./.skiff/node,", "-rf", layer, "."]);
    for (const mount of image.mounts)
      await runChecked("tar", [
        "-C",
        dirname(mount.source),
        "--transform",
        `s,^${basename(mount.source)},.${mount.target},`,
        "-rf",
        layer,
        basename(mount.source),
      ]);
    if (lowers.length > 1) await runChecked("umount", [merged]);
    const oci = join(scratch, "oci");
    await runChecked("umoci", ["init", "--layout", oci]);
    await runChecked("umoci", ["new", "--image", `${oci}:latest`]);
    await runChecked("umoci", ["raw", "add-layer", "--image", `${oci}:latest`, layer]);
    const env = { PATH: `/.skiff/node/bin:${PATH.split(":").slice(1).join(":")}`, ...image.env };
    await runChecked("umoci", [
      "config",
      "--image",
      `${oci}:latest`,
      "--config.workingdir",
      image.cwd,
      ...Object.entries(env).flatMap(([name, value]) => ["--config.env", `${name}=${value}`]),
      ...(image.user ? ["--config.user", `${image.user.uid}:${image.user.gid}`] : []),
    ]);
    const tarball = join(scratch, "layout.tar");
    await runChecked("tar", ["-C", oci, "-cf", tarball, "."]);
    log("image export: done");
    return await readFile(tarball);
  } finally {
    await runCommand("umount", [merged]);
    await rm(scratch, { recursive: true, force: true });
  }
}
