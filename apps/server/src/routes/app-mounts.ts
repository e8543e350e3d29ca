import { BUCKET_SECRET_KEYS, buildVolumesOf, type FunctionSpec, mountsProblem } from "@skiff/protocol";
import type { Scope, Store } from "@skiff/store";
import { missingVolume } from "../engine/systems/containers.js";
import { ApiError } from "../errors.js";
import type { Secrets } from "./secrets.js";

/**
 * Checks that an app's functions can mount what they ask for in `scope`, before anything is written: plain
 * paths that do not overlap, every volume there (one marked `createIfMissing` is made now, by `author`),
 * their images' build volumes too, and every bucket's secret there with its keys.
 */
export async function checkAppMounts(
  deps: { store: Store; secrets: Secrets | undefined },
  scope: Scope,
  functions: FunctionSpec[],
  author: string,
): Promise<void> {
  const { env } = scope;
  const there = (name: string, createIfMissing: boolean | undefined) =>
    deps.store.volumes.resolve(scope, name, { createIfMissing, author });
  // The environment's secrets, read once if a bucket names one.
  let secrets: Promise<Map<string, string[]>> | undefined;
  for (const fn of functions) {
    const where = `${fn.kind} "${fn.name}"`;
    const mounts = fn.volumes ?? [];
    const problem = mountsProblem(
      mounts,
      fn.image.mounts.map((mount) => mount.target),
    );
    if (problem) throw new ApiError("BAD_REQUEST", `${where}: ${problem}`);
    // Its image's steps mount volumes while it is built (on a container's start, if not before).
    for (const { name, createIfMissing } of buildVolumesOf(fn.image)) {
      if (!(await there(name, createIfMissing))) {
        throw new ApiError("BAD_REQUEST", missingVolume(`the image of ${where}`, name, env));
      }
    }
    for (const mount of mounts) {
      if (mount.kind === "volume") {
        if (!(await there(mount.name, mount.createIfMissing))) {
          throw new ApiError("BAD_REQUEST", missingVolume(where, mount.name, env));
        }
        continue;
      }
      if (!mount.secret) continue;
      const store = deps.secrets?.store;
      if (!store) throw new ApiError("UNAVAILABLE", "this server has no secret store");
      secrets ??= store.list(env, scope.workspace).then((all) => new Map(all.map((s) => [s.name, s.keys])));
      const keys = (await secrets).get(mount.secret);
      const found = keys !== undefined;
      const missing = BUCKET_SECRET_KEYS.filter((key) => !keys?.includes(key));
      if (!found || missing.length > 0) {
        throw new ApiError(
          "BAD_REQUEST",
          `${where}: the bucket "${mount.bucket}" at "${mount.path}" needs the secret "${mount.secret}" in environment "${env}" with ${BUCKET_SECRET_KEYS.join(" and ")}${found ? ` (missing: ${missing.join(", ")})` : ""}: \`skiff secret create ${mount.secret} AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=…${found ? " --force" : ""} --env ${env}\``,
        );
      }
    }
  }
}
