import { join } from "node:path";
import type { BucketCredentials, MountSpec } from "@skiff/protocol";
import { Client } from "skiff/plumbing";
import type { Mount } from "../runtime/types.js";
import { ApiVolumeSource } from "./api-volume-source.js";
import { BucketMount } from "./bucket-mount.js";
import { VolumeMount } from "./volume-mount.js";

/** What a container's mounts need: its spec's mounts and the server it reaches with its own token. */
export interface ContainerMountsOptions {
  mounts: readonly MountSpec[];
  /** The container's environment: where its volumes are. */
  env: string;
  serverUrl: string;
  /** The container's own token: its mounts reach what its code could, and nothing more. */
  token: string;
  /** The credentials of its bucket mounts, by secret name (from the start message). */
  bucketCredentials: Record<string, BucketCredentials>;
  /** This container's mount directory on the worker; each mount gets its own folder below it. */
  dir: string;
  /** Told what went wrong in the background (a periodic commit), to show in the app's logs. */
  warn(line: string): void;
}

type Mounted =
  | { kind: "volume"; spec: Extract<MountSpec, { kind: "volume" }>; mount: VolumeMount }
  | { kind: "bucket"; spec: Extract<MountSpec, { kind: "bucket" }>; mount: BucketMount };

/**
 * The volumes and buckets of one container, mounted on the worker before it starts and bound into it at
 * their paths. Volumes commit in the background while files change, on `commit(name)` from the code
 * inside, and at a clean exit; buckets upload each file when it is closed.
 */
export class ContainerMounts {
  private constructor(private readonly mounted: Mounted[]) {}

  /** Mounts them all, or none: one that fails unmounts those made before it, and the error says which. */
  static async mount(options: ContainerMountsOptions): Promise<ContainerMounts> {
    const made = new ContainerMounts([]);
    const client = new Client({ serverUrl: options.serverUrl, agent: "sdk", token: options.token });
    try {
      for (const [index, spec] of options.mounts.entries()) {
        const dir = join(options.dir, String(index));
        if (spec.kind === "volume") {
          const mount = await VolumeMount.mount({
            source: new ApiVolumeSource(client, spec.name, options.env),
            readOnly: spec.readOnly,
            dir,
            onAutoCommitError: (error) =>
              options.warn(`volume "${spec.name}": a background commit failed, will try again: ${error.message}`),
          }).catch((error: Error) => {
            throw new Error(`volume "${spec.name}" could not be mounted at ${spec.path}: ${error.message}`);
          });
          made.mounted.push({ kind: "volume", spec, mount });
        } else {
          const credentials = spec.secret ? options.bucketCredentials[spec.secret] : undefined;
          if (spec.secret && !credentials) throw new Error(`the credentials of bucket "${spec.bucket}" did not come`);
          const mount = await BucketMount.mount({
            endpoint: spec.endpoint,
            bucket: spec.bucket,
            ...(spec.keyPrefix ? { keyPrefix: spec.keyPrefix } : {}),
            ...(spec.region ? { region: spec.region } : {}),
            ...(credentials ? { credentials } : {}),
            readOnly: spec.readOnly,
            dir,
          }).catch((error: Error) => {
            throw new Error(`bucket "${spec.bucket}" could not be mounted at ${spec.path}: ${error.message}`);
          });
          made.mounted.push({ kind: "bucket", spec, mount });
        }
      }
    } catch (error) {
      await made.close({ commit: false });
      throw error;
    }
    return made;
  }

  /** The bind mounts to give the runtime. */
  get runtimeMounts(): Mount[] {
    // Shared with the host: rclone must see each close() (to upload the file before a commit) and each open()
    // after a reload (for the new bytes).
    return this.mounted.map(({ spec, mount }) => ({
      source: mount.hostPath,
      target: spec.path,
      readonly: spec.readOnly,
      sharedWithHost: true,
    }));
  }

  /** Commits what the container wrote to the named volume; answers the version it now shows. */
  async commit(name: string): Promise<{ version: number }> {
    const mount = this.volume(name);
    if (mount.readOnly) throw new Error(`volume "${name}" is mounted read-only here: there is nothing to commit`);
    const result = await mount.commit();
    return { version: Number(result.version) };
  }

  /** Shows the latest version of the named volume (the container's own changes stay on top). */
  async reload(name: string): Promise<{ version: number }> {
    return { version: Number(await this.volume(name).reload()) };
  }

  /**
   * Unmounts everything. With `commit` (a clean exit), volumes commit what the container wrote and buckets
   * upload what it closed; otherwise the volumes' changes are dropped. Failures are returned, one line each;
   * every mount is closed whatever the others do.
   */
  async close(options: { commit: boolean }): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(
      this.mounted.splice(0).map(async (entry) => {
        try {
          if (entry.kind === "volume") await entry.mount.close({ commit: options.commit });
          else await entry.mount.close({ flush: options.commit });
        } catch (error) {
          const what = entry.kind === "volume" ? `volume "${entry.spec.name}"` : `bucket "${entry.spec.bucket}"`;
          problems.push(
            `${what}: ${options.commit ? "the commit at exit failed" : "unmounting failed"}: ${(error as Error).message}`,
          );
        }
      }),
    );
    return problems;
  }

  private volume(name: string): VolumeMount {
    const found = this.mounted.find((entry) => entry.kind === "volume" && entry.spec.name === name);
    if (!found)
      throw new Error(`volume "${name}" is not mounted in this function: add it to the function's \`volumes\``);
    return found.mount as VolumeMount;
  }
}
