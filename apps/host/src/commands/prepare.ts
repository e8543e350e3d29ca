import { type Config, say } from "@skiff/cli";
import { ensureBaseRootfs, ensureNodeDist } from "@skiff/worker";

/** `skiff prepare`: fetches the base image and the Node build containers use, so the first run is fast. */
export async function prepareCommand(config: Config): Promise<void> {
  const major = Number(process.versions.node.split(".")[0]);
  const [rootfs, node] = await Promise.all([ensureBaseRootfs(config.cacheDir), ensureNodeDist(config.cacheDir, major)]);
  say(`base image ${rootfs}; node ${node}`);
}
