import { Readable } from "node:stream";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import type { VolumeCommitted, VolumeEntryView, VolumeVersionView } from "@skiff/protocol/http/volumes";
import type { VolumeMountSpec } from "@skiff/protocol/mounts";
import type { Client } from "./client.js";
import { clientFromEnvironment } from "./connect.js";
import { getContext } from "./context.js";
import { SkiffError } from "./errors.js";

const VOLUME = Symbol.for("skiff.volume");

/** A file or directory of a volume, as `list` yields it: its path is relative to the volume's root. */
export type VolumeEntry = Omit<VolumeEntryView, "chunks">;

/** A version of a volume, as `history` lists it (newest first). */
export type VolumeVersion = VolumeVersionView;

/** What a change answers: the version it made (the latest, when nothing changed). */
export type VolumeChangeResult = VolumeCommitted;

/** What `write` may take: bytes, text, or a stream of bytes (read as it goes, never whole). */
export type VolumeData = Uint8Array | string | AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

export interface VolumeOptions {
  /** Create the volume on first use if it is not there (otherwise a missing volume is an error). */
  createIfMissing?: boolean;
  /** The environment the volume lives in: the app's (a container's own) or `main` by default. */
  environment?: string;
}

/**
 * A named volume of an environment: persistent files that functions and programs share, versioned (every
 * change is a version; `skiff volume history` and `rollback`). Resolved on first use, so it can be
 * declared at module level.
 *
 * Mounted into a function (`volumes: { "/models": models }`), the volume is a directory in each of its
 * containers: a container's writes are its own until `commit()` (also made every few seconds while files
 * change, and when the container exits cleanly), and `reload()` shows what others committed since.
 *
 * From any Node program a volume is read and written through the API: `write`, `read`, `readStream`,
 * `list`, `remove`, `copy`, `history`, `rollback`; inside a function, the same works for the volumes that
 * function mounts (with its container's own token).
 *
 * @example
 * const models = Volume.fromName("models", { createIfMissing: true });
 * await models.write("weights/a.bin", bytes);
 * const again = await models.read("weights/a.bin");
 * for await (const entry of models.list("/", { recursive: true })) console.log(entry.path, entry.size);
 * export const infer = app.function({ volumes: { "/models": models.readOnly() } }, async () => {
 *   await models.reload();
 *   return (await readFile("/models/weights/a.bin")).length;
 * });
 */
export class Volume {
  readonly [VOLUME] = true;
  #ready: Promise<Client> | undefined;

  private constructor(
    /** The volume's name in its environment. */
    readonly name: string,
    private readonly options: VolumeOptions,
    private readonly client?: Client,
    /** Mounted read-only (see `readOnly()`). */
    readonly isReadOnly = false,
  ) {}

  /**
   * The volume of that name, resolved on first use: a missing one is created with `createIfMissing`,
   * else the first use fails saying how to create it.
   * @example
   * const data = Volume.fromName("data", { createIfMissing: true, environment: "staging" });
   */
  static fromName(name: string, options: VolumeOptions = {}): Volume {
    checkName(name);
    return new Volume(name, { ...options });
  }

  /** A volume reached through `client` (what the skiff command uses); see `fromName`. */
  static withClient(client: Client, name: string, options: VolumeOptions = {}): Volume {
    checkName(name);
    return new Volume(name, { ...options }, client);
  }

  /**
   * The same volume, mounted read-only: a write inside the container fails with EROFS, and its writes
   * through the API are refused. Many containers may read a volume that one function writes.
   * @example
   * app.function({ volumes: { "/models": models.readOnly() } }, infer);
   */
  readOnly(): Volume {
    return new Volume(this.name, this.options, this.client, true);
  }

  /**
   * How a function mounts it at `path` (what `volumes: { [path]: volume }` becomes in the manifest).
   * @internal
   */
  toMountSpec(path: string): VolumeMountSpec {
    if (this.options.environment !== undefined) {
      throw new TypeError(
        `volume "${this.name}" at "${path}": a mounted volume is the app's environment's; drop \`environment\` from Volume.fromName (deploy with --env to pick it)`,
      );
    }
    return {
      kind: "volume",
      path,
      name: this.name,
      readOnly: this.isReadOnly,
      createIfMissing: this.options.createIfMissing ?? false,
    };
  }

  /** Looks the volume up (or creates it) now rather than at its first use; answers itself. */
  async hydrate(): Promise<this> {
    await this.ready();
    return this;
  }

  /**
   * Writes a file (replacing one at that path, making the directories above it). A stream is sent as it is
   * read, in 8 MiB chunks stored once however many files hold them. Answers the version it made.
   * @example
   * await volume.write("logs/today.txt", "hello\n");
   * await volume.write("big.bin", createReadStream("big.bin"));
   */
  async write(
    path: string,
    data: VolumeData,
    options: { mode?: number; mtimeMs?: number; size?: number } = {},
  ): Promise<VolumeChangeResult & { storedBytes: number }> {
    this.writable("write");
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    const body =
      typeof data === "string"
        ? new TextEncoder().encode(data)
        : data instanceof Uint8Array
          ? data
          : isWebStream(data)
            ? (Readable.fromWeb(
                data as import("node:stream/web").ReadableStream<Uint8Array>,
              ) as AsyncIterable<Uint8Array>)
            : data;
    const query = {
      ...this.env(),
      path,
      ...(options.mode === undefined ? {} : { mode: options.mode.toString(8) }),
      ...(options.mtimeMs === undefined ? {} : { mtime: String(Math.round(options.mtimeMs)) }),
    };
    const { entry: _, ...result } = await client.callWithBytes(
      volumeRoutes.write,
      { params: { name: this.name }, query },
      body,
      options.size,
    );
    return result;
  }

  /** A file's bytes, whole. For a large file, `readStream` holds only what is being read. */
  async read(path: string, options: { version?: number } = {}): Promise<Uint8Array> {
    const response = await this.open(path, options);
    const size = Number(response.headers["content-length"]);
    const bytes = new Uint8Array(size);
    let at = 0;
    for await (const piece of response as AsyncIterable<Buffer>) {
      if (at + piece.length > size) throw new SkiffError("INTERNAL", `"${path}" is longer than the server said`);
      bytes.set(piece, at);
      at += piece.length;
    }
    if (at !== size) throw new SkiffError("UNAVAILABLE", `reading "${path}" was cut short at ${at} of ${size} bytes`);
    return bytes;
  }

  /**
   * A file's bytes as a stream, read as they are taken; `start` and `end` (exclusive) pick a part.
   * @example
   * for await (const piece of volume.readStream("big.bin")) hash.update(piece);
   */
  readStream(
    path: string,
    options: { version?: number; start?: number; end?: number } = {},
  ): ReadableStream<Uint8Array> {
    let pieces: AsyncIterator<Buffer> | undefined;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        pieces ??= ((await this.open(path, options)) as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
        const { value, done } = await pieces.next();
        if (done) controller.close();
        else controller.enqueue(new Uint8Array(value.buffer, value.byteOffset, value.length));
      },
      cancel: async () => {
        await pieces?.return?.();
      },
    });
  }

  /**
   * The entries of a directory (`/` for the root), by name, fetched a page at a time; `recursive` walks
   * everything below it, directory by directory.
   * @example
   * for await (const entry of volume.list("models", { recursive: true })) console.log(entry.path);
   */
  async *list(path = "/", options: { recursive?: boolean; version?: number } = {}): AsyncGenerator<VolumeEntry> {
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    let after: string | undefined;
    do {
      const page = await client.call(volumeRoutes.listFiles, {
        params: { name: this.name },
        query: {
          ...this.env(),
          path,
          ...(options.recursive ? { recursive: "true" } : {}),
          ...(options.version === undefined ? {} : { version: String(options.version) }),
          ...(after ? { after } : {}),
        },
      });
      for (const entry of page.entries) yield plainEntry(entry);
      after = page.next;
    } while (after);
  }

  /** Removes a file, or a directory with everything in it when `recursive`. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<VolumeChangeResult> {
    this.writable("remove");
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    return client.call(volumeRoutes.remove, {
      params: { name: this.name },
      query: { ...this.env(), path, ...(options.recursive ? { recursive: "true" } : {}) },
    });
  }

  /** Copies a file or a directory within the volume; the bytes are shared, not copied. */
  async copy(from: string, to: string): Promise<VolumeChangeResult> {
    this.writable("copy");
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    return client.call(volumeRoutes.copy, { params: { name: this.name }, query: this.env(), body: { from, to } });
  }

  /** The volume's versions, newest first: who made each and what it did. */
  async history(options: { limit?: number } = {}): Promise<VolumeVersion[]> {
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    const { versions } = await client.call(volumeRoutes.history, {
      params: { name: this.name },
      query: { ...this.env(), ...(options.limit ? { limit: String(options.limit) } : {}) },
    });
    return versions;
  }

  /** Makes a new version with the files of an earlier one. */
  async rollback(version: number): Promise<VolumeChangeResult> {
    this.writable("rollback");
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    return client.call(volumeRoutes.rollback, { params: { name: this.name }, query: this.env(), body: { version } });
  }

  /**
   * Inside a function that mounts this volume: commits what its container wrote (and closed) under the mount
   * path, making a new version that other containers see after their `reload()`. Commits to different files
   * merge; for one file, the last commit wins. Answers the version (the same one when nothing changed).
   * @example
   * await writeFile("/models/weights.bin", bytes);
   * await models.commit();
   */
  async commit(): Promise<{ version: number }> {
    if (this.isReadOnly) {
      throw new SkiffError(
        "BAD_REQUEST",
        `volume "${this.name}" is mounted read-only here: there is nothing to commit`,
      );
    }
    return this.mounted("commit");
  }

  /**
   * Inside a function that mounts this volume: shows the latest committed version under the mount path
   * (this container's own uncommitted changes stay on top). Answers the version now shown.
   */
  async reload(): Promise<{ version: number }> {
    return this.mounted("reload");
  }

  private async mounted(op: "commit" | "reload"): Promise<{ version: number }> {
    const volumes = getContext()?.volumes;
    if (!volumes) {
      const instead =
        op === "commit"
          ? "writes made with volume.write() are committed already"
          : "volume.read() and list() see the latest version already";
      throw new SkiffError(
        "BAD_REQUEST",
        `volume "${this.name}": ${op}() is for a volume mounted into a function with \`volumes: { "/path": volume }\`, called inside it; ${instead}`,
      );
    }
    return volumes(op, this.name);
  }

  private writable(what: string): void {
    if (this.isReadOnly) {
      throw new SkiffError(
        "BAD_REQUEST",
        `volume "${this.name}": ${what}() through a readOnly() handle; use the volume itself`,
      );
    }
  }

  private env(): { env?: string } {
    const env = this.options.environment ?? getContext()?.env ?? process.env.SKIFF_ENV;
    return env ? { env } : {};
  }

  /** The client, once the volume is known to exist (created if asked). */
  private ready(): Promise<Client> {
    this.#ready ??= (async () => {
      const client = this.client ?? (await clientFromEnvironment());
      const { volumeRoutes } = await routes();
      if (this.options.createIfMissing) {
        await client.call(volumeRoutes.create, { query: this.env(), body: { name: this.name, ifMissing: true } });
      } else {
        await client.call(volumeRoutes.get, { params: { name: this.name }, query: this.env() });
      }
      return client;
    })();
    // A failed lookup is tried again at the next use (the volume may have been created meanwhile).
    this.#ready.catch(() => {
      this.#ready = undefined;
    });
    return this.#ready;
  }

  private async open(path: string, options: { version?: number; start?: number; end?: number }) {
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    const ranged = options.start !== undefined || options.end !== undefined;
    const range = ranged ? `bytes=${options.start ?? 0}-${options.end === undefined ? "" : options.end - 1}` : "";
    return client.callForBytes(
      volumeRoutes.read,
      {
        params: { name: this.name },
        query: { ...this.env(), path, ...(options.version === undefined ? {} : { version: String(options.version) }) },
      },
      range ? { range } : {},
    );
  }
}

/** Whether a value is a Volume, from any copy of the SDK. */
export function isVolume(value: unknown): value is Volume {
  return typeof value === "object" && value !== null && (value as { [VOLUME]?: boolean })[VOLUME] === true;
}

function checkName(name: string): void {
  if (typeof name !== "string" || !RESOURCE_NAME.test(name)) {
    throw new RangeError(
      `Volume.fromName: "${name}" is not a volume name (letters, digits, '-' and '_', at most 63, starting with a letter or digit)`,
    );
  }
}

// Loaded on first use: a route's schemas (and zod) stay out of every container's start.
const routes = () => import("@skiff/protocol/http/volumes");

function isWebStream(value: unknown): value is ReadableStream<Uint8Array> {
  return typeof (value as ReadableStream).getReader === "function";
}

function plainEntry(entry: VolumeEntryView): VolumeEntry {
  const { chunks: _chunks, ...plain } = entry;
  return plain;
}
