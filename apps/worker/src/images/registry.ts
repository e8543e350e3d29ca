import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RegistryAuth } from "@skiff/protocol";
import { runChecked, runCommand } from "../runtime/command.js";
import { makeCacheEntry } from "./cache-entry.js";

/**
 * The root filesystem of a registry image, pulled (skopeo) and unpacked (umoci) once per reference
 * into the cache. The login is `auth` (from the image's Skiff secret), else skopeo's own (`skopeo login`
 * on this host, or REGISTRY_AUTH_FILE). `auth` goes to skopeo in a file only it reads, removed after.
 */
export async function pullRegistryBase(
  cacheDir: string,
  base: { registry: string; insecure: boolean },
  log: (line: string) => void,
  auth?: RegistryAuth,
): Promise<string> {
  const dir = join(cacheDir, "bases", createHash("sha256").update(base.registry).digest("hex"));
  const started = Date.now();
  const made = await makeCacheEntry(dir, async (scratch) => {
    log(`image base ${base.registry}: pulling`);
    const tls = base.insecure ? ["--src-tls-verify=false"] : [];
    const authDir = auth ? await mkdtemp(join(tmpdir(), "skiff-registry-auth-")) : undefined;
    if (authDir && auth) {
      const host = base.registry.split("/")[0]!;
      const encoded = Buffer.from(`${auth.username}:${auth.password}`).toString("base64");
      await writeFile(join(authDir, "auth.json"), JSON.stringify({ auths: { [host]: { auth: encoded } } }), {
        mode: 0o600,
      });
    }
    const pulled = await runCommand("skopeo", [
      "copy",
      ...tls,
      ...(authDir ? ["--src-authfile", join(authDir, "auth.json")] : []),
      `docker://${base.registry}`,
      `oci:${scratch}/oci:image`,
    ]).finally(() => (authDir ? rm(authDir, { recursive: true, force: true }) : undefined));
    if (pulled.code !== 0) {
      const why = (pulled.stderr || pulled.stdout).trim().split("\n").slice(-3).join("\n  ");
      const hint = !/unauthorized|authentication required|denied/i.test(why)
        ? ""
        : auth
          ? "; check the REGISTRY_USERNAME and REGISTRY_PASSWORD of the image's secret"
          : "; give the image a secret with REGISTRY_USERNAME and REGISTRY_PASSWORD (Image.fromRegistry(ref, { secret: Secret.fromName(...) })), or log in on this worker with `skopeo login`";
      throw new Error(`pulling ${base.registry} failed${hint}:\n  ${why}`);
    }
    await runChecked("umoci", ["raw", "unpack", "--image", `${scratch}/oci:image`, join(scratch, "fs")]);
    await rm(join(scratch, "oci"), { recursive: true, force: true });
  });
  log(`image base ${base.registry}: ${made ? `pulled in ${Date.now() - started} ms` : "cached"}`);
  return join(dir, "fs");
}
