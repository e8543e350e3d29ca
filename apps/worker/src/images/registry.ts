import { createHash } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { runChecked, runCommand } from "../runtime/command.js";
import { makeCacheEntry } from "./cache-entry.js";

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
  const started = Date.now();
  const made = await makeCacheEntry(dir, async (scratch) => {
    log(`image base ${base.registry}: pulling`);
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
  });
  log(`image base ${base.registry}: ${made ? `pulled in ${Date.now() - started} ms` : "cached"}`);
  return join(dir, "fs");
}
