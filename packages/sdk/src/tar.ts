import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join, relative } from "node:path";

const BLOCK = 512;

/**
 * A deterministic tar (ustar) of a file or a directory tree: entries sorted, owner root, times zero, so
 * the same content always hashes the same. Regular files, directories and symbolic links; other kinds
 * (sockets, devices) are skipped.
 */
export function tarOf(path: string, into: string): Uint8Array {
  return tarOfAll([{ path, into }]);
}

/** One tar of several files or trees, each under its own name. */
export function tarOfAll(entries: { path: string; into: string }[]): Uint8Array {
  const blocks: Uint8Array[] = [];
  const add = (source: string, name: string) => {
    const stat = lstatSync(source);
    const mode = stat.mode & 0o7777;
    if (stat.isDirectory()) {
      blocks.push(header(`${name}/`, mode, 0, "5", ""));
      for (const child of readdirSync(source).sort()) add(join(source, child), `${name}/${child}`);
    } else if (stat.isSymbolicLink()) {
      blocks.push(header(name, mode, 0, "2", readlinkSync(source)));
    } else if (stat.isFile()) {
      const content = readFileSync(source);
      blocks.push(header(name, mode, content.length, "0", ""), pad(content));
    }
  };
  for (const { path, into } of entries) add(path, into.replace(/^\/+|\/+$/g, "") || ".");
  blocks.push(new Uint8Array(BLOCK * 2));
  return Buffer.concat(blocks);
}

function header(name: string, mode: number, size: number, type: string, link: string): Uint8Array {
  const block = Buffer.alloc(BLOCK);
  let prefix = "";
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", 155);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(prefix) > 155 || Buffer.byteLength(base) > 100)
      throw new RangeError(`${name}: in images, a file name may have 100 bytes and a path 255`);
  }
  if (Buffer.byteLength(link) > 100) throw new RangeError(`${name}: symbolic link targets are limited to 100 bytes`);
  const field = (text: string, offset: number, length: number) => block.write(text, offset, length, "utf8");
  const octal = (value: number, offset: number, length: number) =>
    field(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, length);
  field(base, 0, 100);
  octal(mode, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  field("        ", 148, 8);
  field(type, 156, 1);
  field(link, 157, 100);
  field("ustar\0", 257, 6);
  field("00", 263, 2);
  field("root", 265, 32);
  field("root", 297, 32);
  field(prefix, 345, 155);
  let sum = 0;
  for (const byte of block) sum += byte;
  field(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  return block;
}

function pad(content: Uint8Array): Uint8Array {
  const rest = content.length % BLOCK;
  return rest === 0 ? content : Buffer.concat([content, new Uint8Array(BLOCK - rest)]);
}

/** `path` relative to `root`, for messages. */
export function shown(path: string, root = process.cwd()): string {
  return relative(root, path) || ".";
}
