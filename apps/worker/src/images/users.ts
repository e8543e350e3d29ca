import { readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * A user as a container runs it: `uid[:gid]` as given, or a name looked up in /etc/passwd of the
 * topmost layer that has one (then the base).
 */
export async function resolveUser(
  user: string,
  layersTopFirst: string[],
  rootfs: string,
): Promise<{ uid: number; gid: number; home: string }> {
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  if (numeric) return { uid: Number(numeric[1]), gid: Number(numeric[2] ?? numeric[1]), home: "/" };
  for (const root of [...layersTopFirst, rootfs]) {
    const passwd = await readFile(join(root, "etc", "passwd"), "utf8").catch(() => undefined);
    if (passwd === undefined) continue;
    const entry = passwd.split("\n").find((line) => line.split(":")[0] === user);
    if (!entry) break;
    const [, , uid, gid, , home] = entry.split(":");
    return { uid: Number(uid), gid: Number(gid), home: home || "/" };
  }
  throw new Error(`the image has no user "${user}" in /etc/passwd: create it in an earlier step (useradd)`);
}
