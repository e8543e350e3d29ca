import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { FunctionSpec, ImageSpec } from "@skiff/protocol";
import { buildImage, type Client, setContext, uploadImageFiles } from "skiff/plumbing";
import { bundleFile, displayPath, UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { describe, load } from "../load-app.js";
import { dim, formatError, green, say } from "../output.js";
import { connectServer } from "../server-client.js";
import { splitTarget } from "./run.js";

/** The functions of FILE[::NAME], as described for the server (their images included). */
async function functionsOf(target: string, config: Config) {
  const [file, name] = splitTarget(target);
  const shown = displayPath(file);
  const bundle = await bundleFile(file, join(config.SKIFF_HOME, "bundles"));
  setContext({ v: 1, where: "local", functionIds: {} });
  const manifest = describe(await load(bundle, shown), shown, bundle);
  return { name, shown, manifest };
}

/** The one function FILE::NAME names (or FILE's only function), for what to do with its image. */
async function oneFunction(target: string, config: Config, what: string) {
  const { name, shown, manifest } = await functionsOf(target, config);
  const fn = name ? manifest.functions.find((f) => f.name === name) : manifest.functions[0];
  if (!fn || (!name && manifest.functions.length > 1)) {
    const names = manifest.functions.map((f) => f.name).join(", ") || "none";
    throw new UserCodeError(`name the function whose image to ${what}: ${shown}::NAME (${names})`);
  }
  return fn;
}

/** `skiff image build FILE[::NAME]`: builds the images of FILE's functions (or of one) now. */
export async function imageBuildCommand(target: string, config: Config): Promise<number> {
  const { name, shown, manifest } = await functionsOf(target, config);
  const functions = name ? manifest.functions.filter((fn) => fn.name === name) : manifest.functions;
  if (functions.length === 0) {
    const names = manifest.functions.map((fn) => fn.name).join(", ") || "none";
    throw new UserCodeError(`${shown} has no function "${name}"; its functions: ${names}`);
  }
  return withServer(config, async (client, env) => {
    const built = await buildImages(client, functions, env);
    say(green(`built ${built} image(s)`));
  });
}

/** What `buildImages` says of one image: how many layers it builds, or that the base image has none to build. */
export function imageLine(image: ImageSpec, names: string[]): string {
  if (image.layers.length > 0) {
    return `building the image of ${names.join(", ")} ${dim(`(${image.layers.length} layer${image.layers.length === 1 ? "" : "s"})`)}`;
  }
  const base = typeof image.base === "string" ? "Debian bookworm" : image.base.registry;
  return `${names.join(", ")} ${names.length === 1 ? "runs" : "run"} on the base image ${dim(`(${base}, Node ${image.nodeMajor}): no layers to build`)}`;
}

/** Builds the images of these functions, each distinct image once, streaming the output; returns how many. */
export async function buildImages(client: Client, functions: FunctionSpec[], env: string): Promise<number> {
  // Functions sharing an image build it once: the last layer's key names all of it.
  const images = new Map<string, { image: ImageSpec; names: string[] }>();
  for (const fn of functions) {
    const key = JSON.stringify([fn.image.base, fn.image.layers.at(-1)?.key ?? fn.image.nodeMajor, fn.image.mounts]);
    const entry = images.get(key) ?? { image: fn.image, names: [] };
    entry.names.push(fn.name);
    images.set(key, entry);
  }
  for (const { image, names } of images.values()) {
    say(imageLine(image, names));
    await buildImage(client, image, (line) => console.log(line), { env });
  }
  return images.size;
}

/** `skiff image export FILE[::NAME] DIR`: builds a function's image and writes it as an OCI layout. */
export async function imageExportCommand(target: string, out: string, config: Config): Promise<number> {
  const dir = resolve(out);
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UserCodeError(`${out} is not empty: export into a new or empty directory`);
  }
  const fn = await oneFunction(target, config, "export");
  return withServer(config, async (client, env) => {
    say(`building and exporting the image of ${fn.name}`);
    const hash = await buildImage(client, fn.image, (line) => console.log(line), { export: true, env });
    if (!hash) throw new Error("the server did not return the exported layout");
    const tarball = `${dir}.tar`;
    await writeFile(tarball, await client.getBlob(hash));
    await mkdir(dir, { recursive: true });
    await promisify(execFile)("tar", ["-xf", tarball, "-C", dir]);
    await rm(tarball, { force: true });
    say(green(`exported to ${out}: an OCI layout with the tag latest (e.g. skopeo copy oci:${out}:latest docker://…)`));
  });
}

/** Runs `fn` with a client of the configured server; its failure is printed, and is exit code 1. */
async function withServer(config: Config, fn: (client: Client, env: string) => Promise<void>): Promise<number> {
  const { client, env } = await connectServer(config);
  try {
    await fn(client, env);
    return 0;
  } catch (error) {
    process.stderr.write(`${formatError(error)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

/** What `skiff shell` runs on a terminal when no command is given: bash where the image has it. */
const INTERACTIVE_SHELL = ["/bin/sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"];

/**
 * `skiff shell --image FILE[::NAME] [COMMAND…]`: a shell (or COMMAND) in a container of a function's
 * image, built first if needed and up to a failing step. On a terminal it gets one in the container, of
 * the same size and following resizes; from a pipe, its input and output are plain pipes.
 */
export async function shellCommand(target: string, command: string[], config: Config): Promise<number> {
  const fn = await oneFunction(target, config, "open");
  const { client, env } = await connectServer(config);
  await uploadImageFiles(client, fn.image);
  const sid = randomUUID();
  const ended = new Promise<number>((resolveExit) => {
    client.onShell(sid, (event) => {
      if (event.t === "shell-output") {
        const out = event.stream === "stdout" ? process.stdout : process.stderr;
        out.write(event.stream === "system" ? dim(Buffer.from(event.data).toString()) : event.data);
      } else {
        if (event.error) process.stderr.write(`${formatError(new Error(event.error))}\n`);
        resolveExit(event.code ?? 1);
      }
    });
  });
  // A terminal here gets one in the container (keys go through raw, as typed); a pipe gets plain pipes.
  const terminal = process.stdin.isTTY && process.stdout.isTTY;
  const argv = command.length > 0 ? command : terminal ? INTERACTIVE_SHELL : ["/bin/sh"];
  const size = () => ({ rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  const tty = terminal ? { ...size(), ...(process.env.TERM ? { term: process.env.TERM } : {}) } : undefined;
  await client.send({ t: "shell-open", sid, image: fn.image, command: argv, env, ...(tty ? { tty } : {}) });
  let input = Promise.resolve();
  const send = (message: Parameters<typeof client.send>[0]) => {
    input = input.then(() => client.send(message)).catch(() => {});
  };
  process.stdin.on("data", (data: Buffer) => send({ t: "shell-input", sid, data }));
  process.stdin.on("end", () => send({ t: "shell-input", sid, eof: true }));
  const onResize = () => send({ t: "shell-resize", sid, ...size() });
  if (terminal) {
    process.stdin.setRawMode(true);
    process.stdout.on("resize", onResize);
  }
  try {
    return await ended;
  } finally {
    if (terminal) {
      process.stdin.setRawMode(false);
      process.stdout.off("resize", onResize);
    }
    process.stdin.pause();
    client.close();
  }
}
