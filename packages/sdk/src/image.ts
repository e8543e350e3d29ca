import { createHash, randomUUID } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { ImageSpec, ImageStep } from "@skiff/protocol";
import { ENV_VAR_NAME, IMAGE_USER } from "@skiff/protocol/constants";
import { imageArchives } from "@skiff/protocol/image-files";
import { mountsProblem } from "@skiff/protocol/mount-rules";
import type { Client } from "./client.js";
import { clientFromEnvironment } from "./connect.js";
import { inContainer } from "./context.js";
import { applyDockerfile } from "./dockerfile.js";
import { SkiffError } from "./errors.js";
import type { Secret } from "./secret.js";
import { tarOf, tarOfAll } from "./tar.js";
import { isVolume, type Volume } from "./volume.js";

/** Options every builder step takes. */
export interface StepOptions {
  /** Rebuild this layer (and those after it) on every run, e.g. to pick up a moving `latest`. */
  forceBuild?: boolean;
  /**
   * Named secrets the step runs with, as environment variables (later ones win): a private registry's
   * token, say. They are not stored in the layer, and changing a value does not rebuild it.
   * @example .npmInstall("@acme/private", { secrets: [Secret.fromName("npm")] })
   */
  secrets?: Secret[];
  /**
   * `runCommands` only: volumes mounted read-write at these paths while the step's commands run (a
   * download cache, say), not stored in the layer. What the step writes there is committed when it
   * succeeds, dropped when it fails. Their names and paths are part of the layer's key, their contents
   * are not: a cached layer does not run again when the volume changes.
   * @example .runCommands("pip download torch -d /cache", { volumes: { "/cache": Volume.fromName("pip-cache", { createIfMissing: true }) } })
   */
  volumes?: Record<string, Volume>;
}

interface Layer {
  step: ImageStep;
  force: boolean;
}

const PACKAGE = /^[A-Za-z0-9@][A-Za-z0-9@/._+:~=<>^*-]*$/;

/**
 * A container image defined in code. Each builder call returns a new image with one more layer; a layer
 * is rebuilt only when it or a layer before it changes. Builds run on a worker, in a container with
 * network access, before the function's first container starts.
 * @example
 * const image = Image.debianSlim({ node: 22 }).aptInstall("ffmpeg").npmInstall("sharp@0.33").env({ MODE: "prod" });
 * export const f = app.function({ image }, async () => (await import("sharp")).default.versions);
 */
export class Image {
  private constructor(
    private readonly nodeMajor: number | undefined,
    private readonly layers: readonly Layer[],
    private readonly mounts: readonly { archive: string; target: string }[] = [],
    private readonly base: ImageSpec["base"] = "debian-bookworm",
  ) {}

  /** Debian bookworm with the given Node major (default: the major of the Node running `skiff`). */
  static debianSlim(options: { node?: string | number } = {}): Image {
    const node = options.node === undefined ? undefined : Number(options.node);
    if (node !== undefined && (!Number.isInteger(node) || node < 18)) {
      throw new RangeError(`Image.debianSlim: node must be a major version of 18 or later, not ${options.node}`);
    }
    return new Image(node, []);
  }

  /**
   * An image pulled from any OCI or Docker registry (with skopeo, on the worker). Its root filesystem is
   * the base; the function's Node build is mounted into it, so it needs glibc (Debian, Ubuntu…). A
   * registry that wants a login takes it from `secret` (a `Secret.fromName` with REGISTRY_USERNAME and
   * REGISTRY_PASSWORD, in the app's environment), else from `skopeo login` on the worker host.
   * `insecure` allows plain HTTP. A tag is pulled once per worker: to move, push a new tag or use a digest.
   * @example Image.fromRegistry("registry.example:5000/team/base:1", { secret: Secret.fromName("reg") })
   */
  static fromRegistry(
    ref: string,
    options: { node?: string | number; insecure?: boolean; secret?: Secret } = {},
  ): Image {
    if (!/^[a-z0-9][a-z0-9._:/@-]*$/i.test(ref) || ref.includes("://")) {
      throw new RangeError(`fromRegistry: ${ref} is not an image reference (host[:port]/name[:tag|@digest])`);
    }
    const node = Image.debianSlim(options.node === undefined ? {} : { node: options.node }).nodeMajor;
    const secret = options.secret?.ref;
    if (secret && !("name" in secret)) {
      throw new TypeError("fromRegistry: the login must be a named secret: { secret: Secret.fromName(NAME) }");
    }
    return new Image(node, [], [], {
      registry: ref,
      insecure: options.insecure ?? false,
      ...(secret ? { secret: secret.name } : {}),
    });
  }

  /**
   * Adds a file from this machine at `remote`. It is mounted read-only when a container starts, so a
   * change needs no rebuild; with `copy: true` it is baked into a layer that later steps can use.
   */
  addLocalFile(local: string, remote: string, options: { copy?: boolean } = {}): Image {
    return this.addLocal("addLocalFile", local, remote, "file", options);
  }

  /** Adds a directory from this machine at `remote`; mounted at start, or a layer with `copy: true`. */
  addLocalDir(local: string, remote: string, options: { copy?: boolean } = {}): Image {
    return this.addLocal("addLocalDir", local, remote, "directory", options);
  }

  /**
   * An image from a Dockerfile: each instruction one cached layer. FROM a Debian bookworm image, RUN,
   * COPY and ADD (local files), ENV, ARG, WORKDIR, USER, LABEL, ENTRYPOINT and CMD (the function is the
   * entrypoint, so the last three are recorded only); anything else is refused, naming its line.
   */
  static fromDockerfile(path: string, options: { context?: string; buildArgs?: Record<string, string> } = {}): Image {
    if (inContainer()) return Image.debianSlim();
    return applyDockerfile(Image.debianSlim(), path, options);
  }

  /** Installs Debian packages with apt-get. */
  aptInstall(...args: [...packages: string[], options: StepOptions] | string[]): Image {
    const [packages, options] = split(args);
    return this.with(
      {
        kind: "apt",
        packages: checkPackages("aptInstall", packages),
        ...stepSecrets("aptInstall", options),
        ...noVolumes("aptInstall", options),
      },
      options,
    );
  }

  /**
   * Installs npm packages into the image (`/node_modules`), where the function's bundle finds them:
   * use it for native modules and anything the bundler should not inline.
   */
  npmInstall(...args: [...packages: string[], options: StepOptions] | string[]): Image {
    const [packages, options] = split(args);
    return this.with(
      {
        kind: "npm",
        packages: checkPackages("npmInstall", packages),
        ...stepSecrets("npmInstall", options),
        ...noVolumes("npmInstall", options),
      },
      options,
    );
  }

  /** Runs shell commands (`/bin/sh -c`), in order, failing at the first that fails. */
  runCommands(...args: [...commands: string[], options: StepOptions] | string[]): Image {
    const [commands, options] = split(args);
    if (commands.length === 0 || commands.some((c) => c.trim() === "")) {
      throw new RangeError("runCommands: give at least one command, none of them empty");
    }
    return this.with(
      { kind: "run", commands, ...stepSecrets("runCommands", options), ...stepVolumes(options) },
      options,
    );
  }

  /** Sets environment variables for later steps and for the function. */
  env(vars: Record<string, string>): Image {
    for (const [name, value] of Object.entries(vars)) {
      if (!ENV_VAR_NAME.test(name) || typeof value !== "string") {
        throw new RangeError(`env: ${name} must be a variable name with a string value`);
      }
    }
    return this.with({ kind: "env", vars: { ...vars } }, {});
  }

  /** Sets (and creates) the working directory of later steps and of the function. */
  workdir(path: string): Image {
    if (!path.startsWith("/")) throw new RangeError(`workdir: ${path} must be an absolute path`);
    return this.with({ kind: "workdir", path }, {});
  }

  /**
   * Builds the image now, on a worker (otherwise the first container of a function that uses it does),
   * passing each layer's line and the steps' output to `onLine` (default: printed). Throws with the step
   * that failed.
   */
  async build(options: { onLine?: (line: string) => void; client?: Client } = {}): Promise<void> {
    const client = options.client ?? (await clientFromEnvironment());
    const nodeMajor = Number(process.versions.node.split(".")[0]);
    await buildImage(client, this.toSpec(nodeMajor), options.onLine ?? ((line) => console.log(line)));
  }

  /** Runs later steps and the function as `user`: a name from the image's /etc/passwd, or `uid[:gid]`. */
  user(user: string): Image {
    if (!IMAGE_USER.test(user)) throw new RangeError(`user: ${user} is not a user name or uid[:gid]`);
    return this.with({ kind: "user", user }, {});
  }

  /**
   * The image as the worker builds it, with each layer's key: the hash of the parent's key and the
   * step. `SKIFF_FORCE_BUILD=1` rebuilds every layer.
   */
  toSpec(defaultNodeMajor: number, env: NodeJS.ProcessEnv = process.env): ImageSpec {
    const nodeMajor = this.nodeMajor ?? defaultNodeMajor;
    const forceAll = env.SKIFF_FORCE_BUILD === "1";
    const base = this.base === "debian-bookworm" ? "debian-bookworm" : `registry/${this.base.registry}`;
    let key = sha256(`${base}/node${nodeMajor}`);
    return {
      base: this.base,
      nodeMajor,
      layers: this.layers.map(({ step, force }) => {
        key = sha256(`${key}\n${JSON.stringify(step)}${force || forceAll ? `\n${randomUUID()}` : ""}`);
        return { key, step };
      }),
      mounts: [...this.mounts],
    };
  }

  /** One layer holding several local files or trees, each at its own path (a Dockerfile's COPY). */
  copyFiles(entries: { path: string; into: string }[], target: string): Image {
    if (inContainer()) return this;
    return this.with({ kind: "copy", archive: registerArchive(tarOfAll(entries)), target }, {});
  }

  private with(step: ImageStep, options: StepOptions): Image {
    return new Image(
      this.nodeMajor,
      [...this.layers, { step, force: options.forceBuild === true }],
      this.mounts,
      this.base,
    );
  }

  private addLocal(
    method: string,
    local: string,
    remote: string,
    kind: "file" | "directory",
    options: { copy?: boolean },
  ): Image {
    if (inContainer()) return this;
    const path = resolve(local);
    if (!existsSync(path)) throw new RangeError(`${method}: ${local} does not exist (looked in ${path})`);
    if (statSync(path).isDirectory() !== (kind === "directory"))
      throw new RangeError(
        `${method}: ${local} is not a ${kind}${kind === "file" ? "; use addLocalDir" : "; use addLocalFile"}`,
      );
    if (!remote.startsWith("/") || remote === "/")
      throw new RangeError(`${method}: ${remote} must be an absolute path below /`);
    const archive = registerArchive(tarOf(path, remote));
    if (options.copy) return this.with({ kind: "copy", archive, target: remote }, {});
    return new Image(this.nodeMajor, this.layers, [...this.mounts, { archive, target: remote }], this.base);
  }
}

function sha256(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * Archives of local files, by hash, waiting to be uploaded with the app. Kept on globalThis: the user's
 * bundle and the CLI each carry their own copy of this module.
 */
const ARCHIVES = Symbol.for("skiff.localArchives");

function archives(): Map<string, Uint8Array> {
  const holder = globalThis as { [ARCHIVES]?: Map<string, Uint8Array> };
  holder[ARCHIVES] ??= new Map();
  return holder[ARCHIVES];
}

function registerArchive(bytes: Uint8Array): string {
  const hash = sha256(bytes);
  archives().set(hash, bytes);
  return hash;
}

/** The bytes of a local-file archive an image refers to, for uploadImageFiles. */
function localArchive(hash: string): Uint8Array | undefined {
  return archives().get(hash);
}

/** The names of a step's secrets, as the step records them (none: no field, so its key stays the same). */
function stepSecrets(method: string, options: StepOptions): { secrets?: string[] } {
  if (options.secrets === undefined || options.secrets.length === 0) return {};
  const names = options.secrets.map((secret) => {
    const ref = (secret as Partial<Secret> | undefined)?.ref;
    if (!ref || !("name" in ref)) {
      throw new TypeError(`${method}: a step's secrets must be named ones: { secrets: [Secret.fromName(NAME)] }`);
    }
    return ref.name;
  });
  return { secrets: names };
}

/**
 * The volumes a runCommands step mounts, as the step records them (none: no field, so its key stays the
 * same). Read-write volumes of the app's environment only: a step's writes are what it mounts them for.
 */
function stepVolumes(options: StepOptions): { volumes?: NonNullable<Extract<ImageStep, { kind: "run" }>["volumes"]> } {
  const { volumes } = options;
  if (volumes === undefined) return {};
  if (typeof volumes !== "object" || volumes === null || Array.isArray(volumes)) {
    throw new TypeError(
      'runCommands: volumes must be an object of paths, such as { "/cache": Volume.fromName("pip-cache") }',
    );
  }
  const out = Object.entries(volumes).map(([path, volume]) => {
    if (!isVolume(volume)) {
      throw new TypeError(
        `runCommands: volumes["${path}"] must be Volume.fromName(...): a build step mounts volumes only (no bucket)`,
      );
    }
    if (volume.isReadOnly) {
      throw new TypeError(
        `runCommands: volumes["${path}"] is a readOnly() handle: a build step mounts its volumes read-write; pass the volume itself`,
      );
    }
    const { kind: _, readOnly: __, ...mount } = volume.toMountSpec(path);
    return mount;
  });
  if (out.length === 0) return {};
  const problem = mountsProblem(out.map((mount) => ({ kind: "volume" as const, ...mount })));
  if (problem) throw new RangeError(`runCommands: ${problem}`);
  return { volumes: out };
}

/** Refuses `volumes` on a step that does not take them. */
function noVolumes(method: string, options: StepOptions): object {
  if (options.volumes !== undefined) {
    throw new TypeError(
      `${method}: only runCommands mounts volumes; move the work that needs them into a runCommands step`,
    );
  }
  return {};
}

function split(args: (string | StepOptions)[]): [string[], StepOptions] {
  const last = args.at(-1);
  if (last !== undefined && typeof last === "object") return [args.slice(0, -1) as string[], last];
  return [args as string[], {}];
}

function checkPackages(method: string, packages: string[]): string[] {
  if (packages.length === 0) throw new RangeError(`${method}: name at least one package`);
  for (const name of packages) {
    if (typeof name !== "string" || !PACKAGE.test(name)) {
      throw new RangeError(`${method}: "${name}" is not a package name (letters, digits and @/._+:~=<>^*-)`);
    }
  }
  return packages;
}

/** Uploads the archives of local files these images add (each once, by hash). */
export async function uploadImageFiles(client: Client, ...images: ImageSpec[]): Promise<void> {
  for (const hash of new Set(images.flatMap(imageArchives))) {
    const bytes = localArchive(hash);
    if (!bytes) throw new SkiffError("INTERNAL", `the archive ${hash} of an image's local files is missing`);
    await client.putBlob(bytes);
  }
}

/** Uploads an image's local files and builds it on a worker, streaming the build's lines to `onLine`. */
export async function buildImage(
  client: Client,
  image: ImageSpec,
  onLine: (line: string) => void,
  options: { export?: boolean; env?: string } = {},
): Promise<string | undefined> {
  await uploadImageFiles(client, image);
  // Loaded on first use: a route's schemas (and zod) stay out of every container's start.
  const { imageRoutes } = await import("@skiff/protocol/http/images");
  let last = "";
  const body = { image, export: options.export ?? false, ...(options.env ? { env: options.env } : {}) };
  await client.callLines(imageRoutes.build, { body }, (line) => {
    if (line === "ok" || line.startsWith("ok ") || line.startsWith("error: ")) last = line;
    else onLine(line);
  });
  if (!last.startsWith("ok")) {
    throw new SkiffError("BAD_REQUEST", last ? last.slice("error: ".length) : "the build ended without an answer");
  }
  return last.slice(3) || undefined;
}
