import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, posix, resolve } from "node:path";
import { shellQuote } from "@skiff/protocol/shell-quote";

/** Bases a Dockerfile may start FROM: the Debian release images are built on. */
const DEBIAN = /^(docker\.io\/)?(library\/)?debian:(bookworm|12)(-slim)?(@sha256:[0-9a-f]{64})?$/;
/** Recorded for an export; a function's container runs the function, not these. */
const RECORDED = new Set(["LABEL", "ENTRYPOINT", "CMD"]);

class DockerfileError extends RangeError {
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = "DockerfileError";
  }
}

/** The instructions of a Dockerfile: continuation lines joined, comments and blank lines dropped. */
export function parseDockerfile(text: string): { line: number; op: string; args: string }[] {
  const out: { line: number; op: string; args: string }[] = [];
  let pending: { line: number; text: string } | undefined;
  for (const [index, raw] of text.split("\n").entries()) {
    const trimmed = raw.trim();
    if (!pending && (trimmed === "" || trimmed.startsWith("#"))) continue;
    if (pending && trimmed.startsWith("#")) continue;
    const continued = trimmed.endsWith("\\");
    const piece = continued ? trimmed.slice(0, -1) : trimmed;
    pending = pending ? { line: pending.line, text: `${pending.text} ${piece}` } : { line: index + 1, text: piece };
    if (continued) continue;
    const match = /^(\S+)\s*(.*)$/.exec(pending.text.trim());
    if (match) out.push({ line: pending.line, op: match[1]!.toUpperCase(), args: match[2]!.trim() });
    pending = undefined;
  }
  return out;
}

/** The image operations a Dockerfile's instructions become (`Image` has them all). */
export interface DockerfileLayers<T> {
  runCommands(command: string): T;
  env(vars: Record<string, string>): T;
  user(user: string): T;
  workdir(path: string): T;
  copyFiles(entries: { path: string; into: string }[], target: string): T;
}

/**
 * See Image.fromDockerfile: the Dockerfile at `path` as layers on `base`, the image its FROM stands for.
 * It takes `base` rather than making one so that this file and image.ts do not import each other.
 */
export function applyDockerfile<T extends DockerfileLayers<T>>(
  base: T,
  path: string,
  options: { context?: string; buildArgs?: Record<string, string> },
): T {
  const file = resolve(path);
  if (!existsSync(file)) throw new RangeError(`fromDockerfile: ${path} does not exist (looked in ${file})`);
  const context = resolve(options.context ?? dirname(file));
  const vars = new Map<string, string>();
  const expand = (text: string) =>
    text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, braced: string, bare: string) => vars.get(braced ?? bare) ?? "");
  let image: T | undefined;
  let cwd = "/";
  for (const { line, op, args } of parseDockerfile(readFileSync(file, "utf8"))) {
    const fail = (message: string): never => {
      throw new DockerfileError(path, line, message);
    };
    if (op === "ARG") {
      const [name, value] = splitAssign(args);
      vars.set(name, options.buildArgs?.[name] ?? expand(value ?? ""));
      continue;
    }
    if (op === "FROM") {
      if (image) fail("multi-stage builds (a second FROM) are not supported");
      const [ref, ...rest] = expand(args).split(/\s+/);
      if (rest.length > 0) fail(`FROM ${args}: stage names and --platform are not supported`);
      if (!DEBIAN.test(ref!))
        fail(`FROM ${ref}: only Debian bookworm bases (debian:bookworm, debian:12-slim…) are supported`);
      image = base;
      continue;
    }
    if (!image) fail(`${op} before FROM`);
    const current: T = image!;
    switch (op) {
      case "RUN":
        image = current.runCommands(shellForm(expand(args)));
        break;
      case "ENV": {
        const pairs = envPairs(expand(args));
        if (pairs.length === 0) fail("ENV needs NAME=value");
        for (const [name, value] of pairs) vars.set(name, value);
        image = current.env(Object.fromEntries(pairs));
        break;
      }
      case "USER":
        image = current.user(expand(args));
        break;
      case "WORKDIR":
        cwd = posix.resolve(cwd, expand(args));
        image = current.workdir(cwd);
        break;
      case "COPY":
      case "ADD": {
        const words = expand(args).split(/\s+/);
        if (words.some((w) => w.startsWith("--")))
          fail(`${op} options (${words.find((w) => w.startsWith("--"))}) are not supported`);
        if (words.length < 2) fail(`${op} needs a source and a destination`);
        const target = posix.resolve(cwd, words.at(-1)!);
        const sources = words.slice(0, -1);
        const intoDir = words.at(-1)!.endsWith("/") || sources.length > 1;
        const entries = sources.map((source) => {
          if (/^[a-z]+:\/\//.test(source)) fail(`${op} ${source}: only local files are supported`);
          const local = resolve(context, source);
          if (!local.startsWith(context)) fail(`${op} ${source}: the source is outside the build context ${context}`);
          if (!existsSync(local)) fail(`${op} ${source}: no such file in the build context ${context}`);
          const isDir = statSync(local).isDirectory();
          return { path: local, into: intoDir && !isDir ? posix.join(target, basename(local)) : target };
        });
        image = current.copyFiles(entries, target);
        break;
      }
      default:
        if (!RECORDED.has(op))
          fail(`${op} is not supported (supported: FROM RUN COPY ADD ENV ARG WORKDIR USER LABEL ENTRYPOINT CMD)`);
    }
  }
  if (!image) throw new RangeError(`fromDockerfile: ${path} has no FROM`);
  return image;
}

/** `NAME=value` (or a bare `NAME`). */
function splitAssign(text: string): [string, string | undefined] {
  const at = text.indexOf("=");
  return at < 0 ? [text.trim(), undefined] : [text.slice(0, at).trim(), unquote(text.slice(at + 1).trim())];
}

/** `ENV A=1 B="two words"`, or the old `ENV NAME value` form. */
function envPairs(text: string): [string, string][] {
  if (!/^\w+=/.test(text)) {
    const [name, ...rest] = text.split(/\s+/);
    return name ? [[name, rest.join(" ")]] : [];
  }
  const pairs: [string, string][] = [];
  for (const match of text.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g))
    pairs.push([match[1]!, unquote(match[2]!)]);
  return pairs;
}

function unquote(value: string): string {
  if (/^"(.*)"$/.test(value)) return value.slice(1, -1).replace(/\\(.)/g, "$1");
  if (/^'(.*)'$/.test(value)) return value.slice(1, -1);
  return value;
}

/** A RUN in exec form (`["a", "b"]`) as a shell command; the shell form as is. */
function shellForm(args: string): string {
  if (!args.startsWith("[")) return args;
  const words = JSON.parse(args) as string[];
  return words.map(shellQuote).join(" ");
}
