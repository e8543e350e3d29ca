import type { Mount } from "../runtime/types.js";

/**
 * What a container of an image runs on: its layers (bottom first), the caller's files mounted at start,
 * its environment and working directory.
 */
export interface BuiltImage {
  layers: string[];
  mounts: Mount[];
  env: Record<string, string>;
  cwd: string;
  /** The user the image's USER step names, resolved; undefined for root. */
  user: { uid: number; gid: number; home: string } | undefined;
  /** Lets the cache collect these layers again: call once the container is gone. */
  release(): void;
}

/** A build step that failed: which one, how it ended, and the end of its output. */
export class ImageBuildError extends Error {
  constructor(
    readonly step: number,
    readonly total: number,
    readonly description: string,
    readonly exitCode: number | null,
    readonly tail: string[],
  ) {
    super(
      `image step ${step}/${total} (${description}) failed with exit code ${exitCode ?? "none"}:\n` +
        `${tail.map((line) => `  ${line}`).join("\n")}`,
    );
    this.name = "ImageBuildError";
  }
}
