import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { volumeRoutes } from "@skiff/protocol/http";
import { formatBytes } from "@skiff/protocol/units";
import { volumePath } from "@skiff/protocol/volume-path";
import { SkiffError, Volume } from "skiff";
import { UserCodeError } from "../bundle.js";
import type { Config } from "../config.js";
import { dim, green, progress, say } from "../output.js";
import { type Connection, connectServer } from "../server-client.js";

interface EnvOption {
  env?: string;
}

/** The volume, known to exist: an unknown one is an error that says how to create it. */
async function open(name: string, options: EnvOption, config: Config): Promise<{ volume: Volume; conn: Connection }> {
  const conn = await connectServer(config, options.env);
  const volume = Volume.withClient(conn.client, name, { environment: conn.env });
  try {
    await volume.hydrate();
  } catch (error) {
    if (error instanceof SkiffError && error.code === "NOT_FOUND") {
      throw new SkiffError(
        "NOT_FOUND",
        `no volume "${name}" in environment "${conn.env}": create it with \`skiff volume create ${name}${envFlag(conn)}\` (see \`skiff volume list${envFlag(conn)}\`)`,
      );
    }
    throw error;
  }
  return { volume, conn };
}

const envFlag = (conn: Connection) => (conn.env === "main" ? "" : ` --env ${conn.env}`);

/** `skiff volume create NAME [--env E]` */
export async function volumeCreateCommand(name: string, options: EnvOption, config: Config): Promise<void> {
  const conn = await connectServer(config, options.env);
  const { volume } = await conn.client.call(volumeRoutes.create, { query: { env: conn.env }, body: { name } });
  say(
    green(`created volume ${volume.name} in "${conn.env}"`) +
      dim(` (put files with \`skiff volume put ${name} PATH\`)`),
  );
}

/** `skiff volume list [--env E]` */
export async function volumeListCommand(options: EnvOption, config: Config): Promise<void> {
  const conn = await connectServer(config, options.env);
  const { volumes } = await conn.client.call(volumeRoutes.list, { query: { env: conn.env } });
  if (volumes.length === 0) say(`no volumes in "${conn.env}": create one with \`skiff volume create NAME\``);
  for (const v of volumes) console.log([v.name, `v${v.version}`, formatBytes(v.bytes), v.createdAt].join("\t"));
}

/** `skiff volume delete NAME [--force] [--env E]` */
export async function volumeDeleteCommand(
  name: string,
  options: EnvOption & { force?: boolean },
  config: Config,
): Promise<void> {
  const conn = await connectServer(config, options.env);
  const query = { env: conn.env, ...(options.force ? { force: "true" as const } : {}) };
  await conn.client.call(volumeRoutes.delete, { params: { name }, query });
  say(`deleted volume ${name} from "${conn.env}"`);
}

/** `skiff volume ls NAME [PATH] [-r] [--version N]`: type, size, modification time and path, one a line. */
export async function volumeLsCommand(
  name: string,
  path: string | undefined,
  options: EnvOption & { recursive?: boolean; version?: string },
  config: Config,
): Promise<void> {
  const { volume } = await open(name, options, config);
  const version = options.version === undefined ? undefined : versionArg(options.version);
  let count = 0;
  for await (const entry of volume.list(path ?? "/", {
    ...(options.recursive ? { recursive: true } : {}),
    ...(version ? { version } : {}),
  })) {
    count++;
    const when = new Date(entry.mtimeMs).toISOString().replace("T", " ").slice(0, 19);
    const shown = entry.type === "dir" ? `${entry.path}/` : entry.path;
    console.log([entry.type === "dir" ? "d" : "-", formatBytes(entry.size).padStart(10), when, shown].join("  "));
  }
  if (count === 0) say(`${path ?? "/"} is empty`);
}

/**
 * `skiff volume put NAME LOCAL [REMOTE]`: a file, a directory (recursively) or `-` (stdin). A file goes to
 * REMOTE (its own name at the root by default; inside REMOTE when it ends with `/`); a directory's contents
 * go under REMOTE (the directory's name by default; `/` for the root).
 */
export async function volumePutCommand(
  name: string,
  local: string,
  remote: string | undefined,
  options: EnvOption,
  config: Config,
): Promise<void> {
  const { volume } = await open(name, options, config);
  if (local === "-") {
    if (!remote) throw new UserCodeError("give the path in the volume to write stdin to: skiff volume put NAME - PATH");
    const meter = new Meter(undefined);
    const result = await volume.write(remote, meter.count(process.stdin as AsyncIterable<Uint8Array>));
    meter.done();
    say(`${green(`put ${pathIn(remote).path}`)} (${formatBytes(meter.bytes)}) as v${result.version}`);
    return;
  }
  const found = await stat(local).catch(() => undefined);
  if (!found) throw new UserCodeError(`${local} does not exist: check the path (relative to ${process.cwd()})`);
  const files: { from: string; to: string; size: number; mode: number; mtimeMs: number }[] = [];
  if (found.isDirectory()) {
    const base = remote ?? basename(resolve(local));
    for (const file of await filesUnder(local)) {
      const rel = relative(local, file.path).split(sep).join("/");
      files.push({ from: file.path, to: joinRemote(base, rel), ...file.info });
    }
  } else {
    const to = !remote ? basename(local) : remote.endsWith("/") ? joinRemote(remote, basename(local)) : remote;
    files.push({ from: local, to, size: found.size, mode: found.mode & 0o7777, mtimeMs: found.mtimeMs });
  }
  const meter = new Meter(files.reduce((sum, f) => sum + f.size, 0));
  let stored = 0;
  let version = 0;
  for (const file of files) {
    meter.label = `put ${pathIn(file.to).path}`;
    const result = await volume.write(file.to, meter.count(createReadStream(file.from)), {
      size: file.size,
      mode: file.mode,
      mtimeMs: file.mtimeMs,
    });
    stored += result.storedBytes;
    version = result.version;
  }
  meter.done();
  const deduplicated = meter.bytes - stored;
  say(
    `${green(`put ${files.length} file${files.length === 1 ? "" : "s"}`)} (${formatBytes(meter.bytes)}${
      deduplicated > 0 ? `, ${formatBytes(deduplicated)} already stored` : ""
    }) into ${name}${files.length > 0 ? ` as v${version}` : ""}`,
  );
}

/**
 * `skiff volume get NAME REMOTE [LOCAL]`: a file (to `-`, stdout) or a directory, recursively. LOCAL is the
 * remote name in the working directory by default; a file goes inside LOCAL when LOCAL is a directory.
 */
export async function volumeGetCommand(
  name: string,
  remote: string,
  local: string | undefined,
  options: EnvOption & { version?: string },
  config: Config,
): Promise<void> {
  const { volume, conn } = await open(name, options, config);
  const at = pathIn(remote).path;
  const version =
    options.version === undefined
      ? (await conn.client.call(volumeRoutes.get, { params: { name }, query: { env: conn.env } })).volume.version
      : versionArg(options.version);
  const { entry } = await conn.client.call(volumeRoutes.stat, {
    params: { name },
    query: { env: conn.env, path: at, version: String(version) },
  });
  if (local === "-") {
    if (entry.type === "dir") throw new UserCodeError(`"${at || "/"}" is a directory: get it into a local directory`);
    const meter = new Meter(entry.size, `get ${at}`);
    await pipeline(meter.count(volume.readStream(at, { version }) as AsyncIterable<Uint8Array>), process.stdout);
    meter.done();
    return;
  }
  const files: { from: string; to: string; size: number; mode: number; mtimeMs: number }[] = [];
  const target = local ?? (at === "" ? "." : basename(at));
  const into = await stat(target).catch(() => undefined);
  if (entry.type === "file") {
    // A target ending in "/" is a directory, made if need be: `get data a.txt out/` writes out/a.txt.
    const asDir = into?.isDirectory() || /[/\\]$/.test(target);
    files.push({ ...entry, from: at, to: asDir ? join(target, basename(at)) : target });
  } else {
    if (into && !into.isDirectory()) {
      throw new UserCodeError(
        `"${at || "/"}" is a directory and ${target} is a file here: give a directory to get it into`,
      );
    }
    await mkdir(target, { recursive: true });
    for await (const item of volume.list(at, { recursive: true, version })) {
      const rel = at === "" ? item.path : item.path.slice(at.length + 1);
      const to = join(target, ...rel.split("/"));
      if (item.type === "dir") await mkdir(to, { recursive: true });
      else files.push({ ...item, from: item.path, to });
    }
  }
  const meter = new Meter(files.reduce((sum, f) => sum + f.size, 0));
  for (const file of files) {
    meter.label = `get ${file.from}`;
    await mkdir(dirname(file.to), { recursive: true });
    // Written beside its place and renamed there: an interrupted get leaves no half file under the name.
    const partial = `${file.to}.skiff-partial`;
    try {
      await pipeline(
        meter.count(volume.readStream(file.from, { version }) as AsyncIterable<Uint8Array>),
        createWriteStream(partial),
      );
      await chmod(partial, file.mode & 0o7777);
      await utimes(partial, new Date(), new Date(file.mtimeMs));
      await rename(partial, file.to);
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }
  meter.done();
  say(
    `${green(`got ${files.length} file${files.length === 1 ? "" : "s"}`)} (${formatBytes(meter.bytes)}) from ${name} v${version}`,
  );
}

/** `skiff volume rm NAME PATH [-r]` */
export async function volumeRmCommand(
  name: string,
  path: string,
  options: EnvOption & { recursive?: boolean },
  config: Config,
): Promise<void> {
  const { volume } = await open(name, options, config);
  try {
    const result = await volume.remove(path, { recursive: Boolean(options.recursive) });
    say(`removed ${pathIn(path).path || "/"} from ${name} (v${result.version})`);
  } catch (error) {
    if (error instanceof SkiffError && error.code === "BAD_REQUEST" && /is a directory/.test(error.message)) {
      throw new SkiffError(
        "BAD_REQUEST",
        `"${path}" is a directory: remove it with everything in it with \`skiff volume rm ${name} ${path} -r\``,
      );
    }
    throw error;
  }
}

/** `skiff volume cp NAME FROM TO` */
export async function volumeCpCommand(
  name: string,
  from: string,
  to: string,
  options: EnvOption,
  config: Config,
): Promise<void> {
  const { volume } = await open(name, options, config);
  const result = await volume.copy(from, to);
  say(`copied ${pathIn(from).path} to ${pathIn(to).path} in ${name} (v${result.version})`);
}

/** `skiff volume history NAME`: versions, newest first. */
export async function volumeHistoryCommand(name: string, options: EnvOption, config: Config): Promise<void> {
  const { volume } = await open(name, options, config);
  for (const v of await volume.history({ limit: 1000 })) {
    console.log([`v${v.version}`, v.createdAt, v.author, v.note].join("\t"));
  }
}

/** `skiff volume rollback NAME [VERSION]`: the version before the latest by default. */
export async function volumeRollbackCommand(
  name: string,
  versionText: string | undefined,
  options: EnvOption,
  config: Config,
): Promise<void> {
  const { volume } = await open(name, options, config);
  const [latest] = await volume.history({ limit: 1 });
  const version = versionText === undefined ? (latest?.version ?? 1) - 1 : versionArg(versionText);
  if (version < 1) throw new UserCodeError(`${name} has only one version: there is nothing to roll back to`);
  const result = await volume.rollback(version);
  say(
    result.changed === 0
      ? `${name} already holds what v${version} held (nothing changed)`
      : `rolled ${name} back to v${version}'s files as v${result.version} (${result.changed} path${result.changed === 1 ? "" : "s"} changed)`,
  );
}

function versionArg(text: string): number {
  const version = Number(text.replace(/^v/, ""));
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new UserCodeError(`"${text}" is not a version: give its number, as \`skiff volume history\` shows it`);
  }
  return version;
}

function joinRemote(base: string, rel: string): string {
  return pathIn(`${base}/${rel}`).path;
}

/** The files under a local directory (symbolic links and other non-files are left out, and said so). */
async function filesUnder(
  root: string,
): Promise<{ path: string; info: { size: number; mode: number; mtimeMs: number } }[]> {
  const out: { path: string; info: { size: number; mode: number; mtimeMs: number } }[] = [];
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) continue;
    if (!entry.isFile()) {
      say(dim(`skipping ${path}: not a regular file`));
      continue;
    }
    const info = await stat(path);
    out.push({ path, info: { size: info.size, mode: info.mode & 0o7777, mtimeMs: info.mtimeMs } });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** Counts bytes through streams and draws a progress line on a terminal's stderr: done/total, rate. */
class Meter {
  bytes = 0;
  private readonly started = Date.now();

  constructor(
    private readonly total: number | undefined,
    public label = "",
  ) {}

  async *count(source: AsyncIterable<Uint8Array> | Readable): AsyncGenerator<Uint8Array> {
    for await (const piece of source as AsyncIterable<Uint8Array>) {
      this.bytes += piece.length;
      this.draw();
      yield piece;
    }
  }

  private draw(): void {
    const seconds = Math.max((Date.now() - this.started) / 1000, 0.001);
    const rate = `${formatBytes(Math.round(this.bytes / seconds))}/s`;
    if (this.total === undefined || this.total === 0) {
      progress.update(`${this.label} ${formatBytes(this.bytes)} ${dim(rate)}`);
      return;
    }
    const share = Math.min(this.bytes / this.total, 1);
    const width = 24;
    const bar = "█".repeat(Math.round(share * width)).padEnd(width, "░");
    progress.update(
      `${this.label} ${bar} ${Math.floor(share * 100)}% ${formatBytes(this.bytes)}/${formatBytes(this.total)} ${dim(rate)}`,
    );
  }

  done(): void {
    progress.done();
  }
}

/** A path in a volume, normalized; a bad one (`..`, a NUL byte) is the user's mistake, said without a stack. */
function pathIn(raw: string): ReturnType<typeof volumePath> {
  try {
    return volumePath(raw);
  } catch (error) {
    throw new UserCodeError((error as Error).message);
  }
}
