import { randomUUID } from "node:crypto";
import { buildVolumesOf, type ImageSecrets, type ImageSpec } from "@skiff/protocol";
import type { Scope } from "@skiff/store";
import { ApiError } from "../../errors.js";
import type { EngineState } from "../state.js";
import type { WorkerConn } from "../workers.js";
import { missingVolume } from "./containers.js";

/** The volumes of an image's steps, resolved in its scope: what a build grant reaches. */
export interface BuildVolumes {
  scope: Scope;
  volumeIds: string[];
}

/**
 * Build grants: while a worker builds an image whose steps mount volumes, it reaches them with a token of
 * its own, a containers row with a `bd-` id (state 'starting', never 'running') whose container_volumes
 * are those volumes, read-write. The token reaches nothing else (see auth.ts) and stops working when the
 * build ends: `end` marks the row stopped, as does a worker that comes back without it (a restart).
 */
export class BuildGrantSystem {
  /** Grants not ended yet, so that ending a container's (most have none) costs no write. */
  private readonly open = new Set<string>();

  constructor(private readonly state: EngineState) {}

  /**
   * The volumes building `image` mounts, in `scope`: one marked `createIfMissing` is made (by `author`).
   * A missing one is refused (`strict`: an explicit build) or left out (a container start, whose layers
   * may be built already; a step that needs it then fails to mount it). Undefined when no step mounts one.
   */
  async volumesOf(
    scope: Scope,
    image: ImageSpec,
    options: { author: string; strict: boolean },
  ): Promise<BuildVolumes | undefined> {
    const wanted = buildVolumesOf(image);
    if (wanted.length === 0) return undefined;
    const { store } = this.state;
    const volumeIds: string[] = [];
    for (const { name, createIfMissing } of wanted) {
      const volume = await store.volumes.resolve(scope, name, { createIfMissing, author: options.author });
      if (volume) volumeIds.push(volume.id);
      else if (options.strict) throw new ApiError("BAD_REQUEST", missingVolume("an image step", name, scope.env));
    }
    return { scope, volumeIds };
  }

  /**
   * Mints the token of a build on `worker` that reaches `volumes` until the build ends (`end(id)`). A
   * container's start (`owner`) builds its image first: its grant ends when it has started or stopped.
   */
  async grant(
    worker: WorkerConn,
    volumes: BuildVolumes,
    owner?: { containerId: string; appId: string; functionId: string },
  ): Promise<{ id: string; buildVolumes: NonNullable<ImageSecrets["buildVolumes"]> }> {
    const id = owner ? grantOfStart(owner.containerId) : `bd-${randomUUID().slice(0, 13)}`;
    const { workspace, env } = volumes.scope;
    this.open.add(id);
    const token = await this.state.store.fleet.addContainer({
      id,
      workerId: worker.id,
      functionId: owner?.functionId ?? "",
      version: 0,
      workspace,
      appId: owner?.appId ?? "",
      env,
      volumes: volumes.volumeIds.map((volumeId) => ({ volumeId, readOnly: false })),
    });
    return { id, buildVolumes: { token, env } };
  }

  /** The build is over (built, failed, or its worker went away): its token stops working. */
  async end(id: string): Promise<void> {
    if (!this.open.delete(id)) return;
    await this.state.store.fleet.setContainerState(id, "stopped", "build ended");
  }

  /** A container started or stopped: the grant of its image's build, if it had one, ends. */
  startEnded(containerId: string): Promise<void> {
    return this.end(grantOfStart(containerId));
  }
}

/** The id of the build grant of a container's start. */
function grantOfStart(containerId: string): string {
  return `bd-${containerId.replace(/^ct-/, "")}`;
}
