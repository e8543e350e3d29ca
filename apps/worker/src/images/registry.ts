import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { runChecked, runCommand } from "../runtime/command.js";
import { withFileLock } from "../runtime/file-lock.js";
import { diskUsage } from "./disk-usage.js";

/**
 * The root filesystem of a registry image, pulled (skopeo) and unpacked (umoci) once per reference
 * into the cache. Logins are skopeo's (`skopeo login` on this host, or REGISTRY_AUTH_FILE).
 */
export async function pullRegistryBase(
  cacheDir: string,
  base: { registry: string; insecure: boolean },
  log: (line: string) => void,
): Promise<string> {
  const dir = join(cacheDir, "bases", createHash("sha256").update(base.registry).digest("hex"));
  const root = join(dir, "fs");
  if (existsSync(join(dir, "done"))) {
    log(`image base ${base.registry}: cached`);
    return root;
  }
  await mkdir(dirname(dir), { recursive: true });
  return withFileLock(`${dir}.lock`, async () => {
    if (existsSync(join(dir, "done"))) return root;
    const started = Date.now();
    log(`image base ${base.registry}: pulling`);
    const scratch = `${dir}.tmp-${randomUUID().slice(0, 8)}`;
    try {
      await mkdir(scratch, { recursive: true });
      const tls = base.insecure ? ["--src-tls-verify=false"] : [];
      const pulled = await runCommand("skopeo", [
        "copy",
        ...tls,
        `docker://${base.registry}`,
        `oci:${scratch}/oci:image`,
      ]);
      if (pulled.code !== 0) {
        const why = (pulled.stderr || pulled.stdout).trim().split("\n").slice(-3).join("\n  ");
        const hint = /unauthorized|authentication required|denied/i.test(why)
          ? "; log in on this worker with `skopeo login`"
          : "";
        throw new Error(`pulling ${base.registry} failed${hint}:\n  ${why}`);
      }
      await runChecked("umoci", ["raw", "unpack", "--image", `${scratch}/oci:image`, join(scratch, "fs")]);
      await rm(join(scratch, "oci"), { recursive: true, force: true });
      await writeFile(join(scratch, "size"), String(await diskUsage(join(scratch, "fs"))));
      await writeFile(join(scratch, "done"), "");
      await rm(dir, { recursive: true, force: true });
      await rename(scratch, dir);
      log(`image base ${base.registry}: pulled in ${Date.now() - started} ms`);
      return root;
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
}
