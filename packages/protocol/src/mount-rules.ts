/**
 * The rules of a function's mounts, without zod (the SDK checks them where a function is declared, also
 * inside containers). The schemas are in mounts.ts.
 */

/**
 * Where a function's volumes and buckets may not be mounted: the container's own file systems and Skiff's
 * files (the runner, the bundle and its sockets live under `/.skiff`).
 */
const RESERVED_MOUNT_PATHS = ["/", "/proc", "/sys", "/dev", "/.skiff"] as const;

/** An S3 bucket name as S3-compatible stores take it. */
export const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The keys a bucket mount's secret must hold; `AWS_SESSION_TOKEN` and `AWS_REGION` may come with them. */
export const BUCKET_SECRET_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] as const;

/** What mountsProblem needs of a mount. */
export type MountPathOf = { path: string } & ({ kind: "volume"; name: string } | { kind: "bucket"; bucket: string });

/**
 * Why a function's mounts cannot be made, or undefined: a path that is not absolute and plain, one over the
 * container's own file systems or Skiff's files, two mounts at one path or one inside another, a mount over
 * one of the image's local mounts (`imageTargets`), or one volume at two paths.
 * @example mountsProblem([{ kind: "volume", path: "/proc", ... }]) // 'cannot mount over /proc ...'
 */
export function mountsProblem(
  mounts: readonly MountPathOf[],
  imageTargets: readonly string[] = [],
): string | undefined {
  const taken: { path: string; what: string }[] = imageTargets.map((path) => ({
    path: path.replace(/\/+$/, "") || "/",
    what: "one of the image's local files",
  }));
  const volumes = new Map<string, string>();
  for (const mount of mounts) {
    const { path } = mount;
    const what = mount.kind === "volume" ? `volume "${mount.name}"` : `bucket "${mount.bucket}"`;
    const parts = path.split("/").slice(1);
    if (path !== "/" && (!path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === ".."))) {
      return `${what}: mount path "${path}" must be absolute and plain, such as "/models" (no trailing "/", "." or "..")`;
    }
    const reserved = RESERVED_MOUNT_PATHS.find((r) => path === r || (r !== "/" && path.startsWith(`${r}/`)));
    if (reserved) {
      return `${what}: cannot mount over ${reserved} (the container's own${reserved === "/.skiff" ? " Skiff files" : " file system"}): pick another path, such as "/data"`;
    }
    const clash = taken.find((other) => within(path, other.path) || within(other.path, path));
    if (clash) {
      return `${what} at "${path}" ${clash.path === path ? "is at the same path as" : "overlaps"} ${clash.what} at "${clash.path}": give each its own path, neither inside the other`;
    }
    taken.push({ path, what });
    if (mount.kind === "volume") {
      const other = volumes.get(mount.name);
      if (other) {
        return `${what} is mounted twice (at "${other}" and "${path}"): mount it once; a volume has one view per container`;
      }
      volumes.set(mount.name, path);
    }
  }
  return undefined;
}

/** Whether `path` is `dir` or inside it. */
function within(path: string, dir: string): boolean {
  return path === dir || dir === "/" || path.startsWith(`${dir}/`);
}
