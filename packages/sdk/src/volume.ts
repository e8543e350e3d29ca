import { Readable } from "node:stream";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import type { VolumeCommitted, VolumeEntryView, VolumeVersionView } from "@skiff/protocol/http/volumes";
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
 * From any Node program, and from inside a function (with its container's own token), a volume is read
 * and written through the API: `write`, `read`, `readStream`, `list`, `remove`, `copy`, `history`.
 * Mounting a volume into a function's containers (`volumes: { "/models": models }`) comes separately.
 *
 * @example
 * const models = Volume.fromName("models", { createIfMissing: true });
 * await models.write("weights/a.bin", bytes);
 * const again = await models.read("weights/a.bin");
 * for await (const entry of models.list("/", { recursive: true })) console.log(entry.path, entry.size);
 */
export class Volume {
  readonly [VOLUME] = true;
  #ready: Promise<Client> | undefined;

  private constructor(
    /** The volume's name in its environment. */
    readonly name: string,
    private readonly options: VolumeOptions,
    private readonly client?: Client,
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
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    return client.call(volumeRoutes.remove, {
      params: { name: this.name },
      query: { ...this.env(), path, ...(options.recursive ? { recursive: "true" } : {}) },
    });
  }

  /** Copies a file or a directory within the volume; the bytes are shared, not copied. */
  async copy(from: string, to: string): Promise<VolumeChangeResult> {
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
    const client = await this.ready();
    const { volumeRoutes } = await routes();
    return client.call(volumeRoutes.rollback, { params: { name: this.name }, query: this.env(), body: { version } });
  }

  /** For a mounted volume: not available yet (writes through this object are committed as they are made). */
  async commit(): Promise<never> {
    throw new SkiffError(
      "BAD_REQUEST",
      `volume "${this.name}": commit() is for a volume mounted into a function with \`volumes: { "/path": volume }\`; writes made with volume.write() are committed already`,
    );
  }

  /** For a mounted volume: not available yet (reads through this object always see the latest version). */
  async reload(): Promise<never> {
    throw new SkiffError(
      "BAD_REQUEST",
      `volume "${this.name}": reload() is for a volume mounted into a function with \`volumes: { "/path": volume }\`; volume.read() and list() see the latest version already`,
    );
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
