/**
 * Why a function's memory snapshot options do not fit together; undefined when they do. Free of zod: the SDK
 * checks it where the function is declared, and the server at deploy (AppManifest).
 */
export function snapshotProblem(spec: {
  cls?: { snapEnter?: string[] | undefined } | undefined;
  memorySnapshot?: boolean | undefined;
  web?: unknown;
}): string | undefined {
  const snapHooks = spec.cls?.snapEnter ?? [];
  if (snapHooks.length > 0 && !spec.memorySnapshot) {
    return `@enter({ snap: true }) ${snapHooks.join(", ")} runs before a memory snapshot, and the class takes none: add enableMemorySnapshot: true to its options, or drop snap: true`;
  }
  if (spec.memorySnapshot && spec.web) {
    return "web functions cannot start from memory snapshots yet: drop enableMemorySnapshot";
  }
  return undefined;
}
