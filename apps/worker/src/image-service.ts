import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  type ImageSecrets,
  type ImageSpec,
  layerRoutes,
  type ServerToWorker,
  type WorkerMessage,
} from "@skiff/protocol";
import type { Logger } from "pino";
import type { Client } from "skiff/plumbing";
import { type BuiltImage, exportLayout, ImageBuilder, pullRegistryBase } from "./images/index.js";
import { ensureBaseRootfs, ensureNodeDist } from "./runtime/index.js";
import type { ContainerRuntime, RuntimeName } from "./runtime/types.js";

/** What building an image may need from the server's secret store: a registry login, the steps' secrets. */

/** A container's image made ready on this host: its base, the Node build and its layers. */
export interface PreparedImage {
  rootfs: string;
  nodeDir: string;
  image: BuiltImage;
}

/** What the image service works with. */
export interface ImageServiceOptions {
  /** The runtime containers run on: the process runtime runs no images. */
  runtime: RuntimeName;
  /** Runs image build steps. */
  buildRuntime: ContainerRuntime;
  /** Shared caches: base rootfs, Node builds, image layers. */
  cacheDir: string;
  /** Disk budget of cached image layers, in MiB (default 20 GiB); least recently used go first. */
  imageCacheMiB: number | undefined;
  /** Blobs and shared layers live on the server. */
  client: Client;
  /** Run steps' volumes: the server's volume API, and the worker's mounts directory (cleared at its start). */
  volumes?: { serverUrl: string; mountsDir: string };
  log: Logger;
  /** Sends a build's lines and its end to the server. */
  send(message: WorkerMessage): void;
}

const DEFAULT_IMAGE_CACHE_MIB = 20 * 1024;
/** Layers unused this long are removed even within the budget. */
const IMAGE_MAX_AGE_MS = 7 * 24 * 3_600_000;
const IMAGE_GC_EVERY_MS = 10 * 60_000;

/**
 * A worker's images: prepares what a container of an image needs (building missing layers), runs the
 * builds and exports the server asks for, and keeps the layer cache within its disk budget.
 */
export class ImageService {
  private readonly builder: ImageBuilder;
  private collectTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: ImageServiceOptions) {
    const { client } = options;
    this.builder = new ImageBuilder({
      runtime: options.buildRuntime,
      cacheDir: options.cacheDir,
      npmDir: findNpm(),
      fetchBlob: (hash) => client.getBlob(hash),
      shared: {
        find: async (key) => {
          const found = await client.call(layerRoutes.find, { params: { key } }).catch(() => undefined);
          return found?.digest;
        },
        publish: async (key, bytes) => {
          const digest = await client.putBlob(bytes);
          await client.call(layerRoutes.publish, { params: { key }, body: { digest } });
        },
      },
      ...(options.volumes ? { volumes: options.volumes } : {}),
      caBundle: [process.env.NODE_EXTRA_CA_CERTS, "/etc/ssl/certs/ca-certificates.crt"].find(
        (path) => path && existsSync(path),
      ),
    });
  }

  /** Collects unused layers now and every few minutes, until stopCollecting. */
  startCollecting(): void {
    this.collectTimer = setInterval(() => void this.collect(), IMAGE_GC_EVERY_MS);
    this.collectTimer.unref();
    void this.collect();
  }

  /** Stops the periodic collection (a stopping worker). */
  stopCollecting(): void {
    clearInterval(this.collectTimer);
  }

  /** Resolves once layers built here are published (a stopping worker waits for them). */
  published(): Promise<void> {
    return this.builder.published();
  }

  /** The base, the Node build and the image's layers (built if missing) a container of `image` needs. */
  async prepare(
    image: ImageSpec,
    log: (line: string) => void,
    options: { upToFailure?: boolean; secrets?: ImageSecrets } = {},
  ): Promise<PreparedImage> {
    const process = this.options.runtime === "process";
    const { base } = image;
    if (process && (image.layers.length > 0 || base !== "debian-bookworm")) {
      throw new Error("the process runtime cannot build or run images: install runc or runsc and run `make setup`");
    }
    const [rootfs, nodeDir] = await Promise.all([
      process
        ? Promise.resolve("/")
        : base === "debian-bookworm"
          ? ensureBaseRootfs(this.options.cacheDir, log)
          : pullRegistryBase(this.options.cacheDir, base, log, options.secrets?.registryAuth),
      process
        ? Promise.resolve(dirname(dirname(globalThis.process.execPath)))
        : ensureNodeDist(this.options.cacheDir, image.nodeMajor, log),
    ]);
    const ensure = {
      upToFailure: options.upToFailure ?? false,
      secrets: options.secrets?.buildSecrets ?? {},
      volumes: options.secrets?.buildVolumes,
    };
    return { rootfs, nodeDir, image: await this.builder.ensure(image, { rootfs, nodeDir }, log, ensure) };
  }

  /** An image build the server asked for: lines go back batched per tick, then whether it worked. */
  async build(request: Extract<ServerToWorker, { t: "build" }>): Promise<void> {
    const { rid, image } = request;
    let lines: string[] = [];
    const flushLines = () => {
      if (lines.length > 0) this.options.send({ t: "build-log", rid, lines });
      lines = [];
    };
    const log = (line: string) => {
      if (lines.length === 0) setImmediate(flushLines);
      lines.push(line);
    };
    let error: string | undefined;
    let exported: string | undefined;
    try {
      const prepared = await this.prepare(image, log, { secrets: request });
      try {
        if (request.export) {
          const { rootfs, nodeDir } = prepared;
          const layout = await exportLayout(this.options.cacheDir, rootfs, nodeDir, prepared.image, log);
          exported = await this.options.client.putBlob(layout);
        }
      } finally {
        prepared.image.release();
      }
    } catch (failure) {
      error = (failure as Error).message;
    }
    flushLines();
    this.options.send({ t: "build-done", rid, ...(error ? { error } : {}), ...(exported ? { exported } : {}) });
  }

  /** Keeps the image cache within its budget (see ImageBuilder.collect). */
  private async collect(): Promise<void> {
    const maxBytes = (this.options.imageCacheMiB ?? DEFAULT_IMAGE_CACHE_MIB) * 1024 * 1024;
    try {
      const { removed } = await this.builder.collect({
        maxBytes,
        maxAgeMs: IMAGE_MAX_AGE_MS,
        minIdleMs: 3 * IMAGE_GC_EVERY_MS,
      });
      if (removed > 0) this.options.log.info({ removed }, "removed unused image layers");
    } catch (error) {
      this.options.log.warn({ err: error }, "collecting unused image layers failed");
    }
  }
}

/** The host's npm package directory, mounted into npmInstall build steps; undefined if there is none. */
function findNpm(): string | undefined {
  const candidates = [
    join(dirname(dirname(process.execPath)), "lib", "node_modules", "npm"),
    "/usr/lib/node_modules/npm",
    "/usr/local/lib/node_modules/npm",
    "/usr/share/nodejs/npm",
  ];
  return candidates.find((dir) => existsSync(join(dir, "bin", "npm-cli.js")));
}
