import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { pipeline } from "node:stream/promises";
import { type ByteRange, baseName, normalizeVolumePath, type VolumeEntry } from "./volume-source.js";
import { type VolumeView, VolumeViewError } from "./volume-view.js";

/** A WebDAV server over one view, for one rclone mount: loopback only, one bearer token. */
export interface WebdavServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  close(): Promise<void>;
}

export interface WebdavServerOptions {
  view: VolumeView;
  /** The secret rclone sends as `Authorization: Bearer …`. */
  token: string;
  /** Called after every request, for logs and tests. */
  onRequest?: (request: { method: string; path: string; status: number; range?: string }) => void;
}

const STATUS_OF: Record<VolumeViewError["code"], number> = {
  ENOENT: 404,
  EEXIST: 405,
  EISDIR: 405,
  ENOTDIR: 409,
  EROFS: 403,
  EINVAL: 403,
};

/**
 * Serves the subset of WebDAV (RFC 4918) that rclone's webdav backend uses: PROPFIND (depth 0 and 1), GET and
 * HEAD with a byte range, PUT (streamed, `X-OC-Mtime` for the file's time), DELETE, MKCOL, MOVE and COPY.
 */
export async function startWebdavServer(options: WebdavServerOptions): Promise<WebdavServer> {
  const expected = Buffer.from(`Bearer ${options.token}`);
  const server = createServer((request, response) => {
    const method = request.method ?? "GET";
    let path = "/";
    const finish = (status: number) =>
      options.onRequest?.({
        method,
        path,
        status,
        ...(request.headers.range ? { range: request.headers.range } : {}),
      });
    response.on("finish", () => finish(response.statusCode));
    const given = Buffer.from(request.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      request.resume();
      return void response.writeHead(401).end();
    }
    try {
      path = requestPath(request.url ?? "/");
    } catch {
      request.resume();
      return void response.writeHead(400).end();
    }
    handle(options.view, method, path, request, response).catch((error: unknown) => {
      request.resume();
      if (response.headersSent) return void response.destroy();
      const status = error instanceof VolumeViewError ? statusFor(method, error) : 500;
      response.writeHead(status, { "content-type": "text/plain" }).end(String((error as Error).message ?? error));
    });
  });
  // Uploads and downloads of large files take as long as they take.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => closeServer(server) };
}

async function handle(
  view: VolumeView,
  method: string,
  path: string,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  switch (method) {
    case "OPTIONS":
      request.resume();
      response.writeHead(200, { dav: "1", allow: "OPTIONS, PROPFIND, GET, HEAD, PUT, DELETE, MKCOL, MOVE, COPY" });
      return void response.end();
    case "PROPFIND":
      return propfind(view, path, request, response);
    case "GET":
    case "HEAD":
      return get(view, path, request, response, method === "HEAD");
    case "PUT": {
      const mtime = Number(request.headers["x-oc-mtime"]);
      const outcome = await view.write(path, request, Number.isFinite(mtime) && mtime > 0 ? mtime * 1000 : undefined);
      response.writeHead(outcome === "created" ? 201 : 204, { "x-oc-mtime": "accepted" });
      return void response.end();
    }
    case "DELETE":
      request.resume();
      await view.remove(path);
      return void response.writeHead(204).end();
    case "MKCOL":
      request.resume();
      await view.mkdir(path);
      return void response.writeHead(201).end();
    case "MOVE":
    case "COPY": {
      request.resume();
      const destination = request.headers.destination;
      if (!destination) return void response.writeHead(400).end("Destination header missing");
      const to = requestPath(new URL(destination, "http://localhost").pathname);
      const overwrite = String(request.headers.overwrite ?? "T").toUpperCase() !== "F";
      const outcome = await (method === "MOVE" ? view.move(path, to, overwrite) : view.copy(path, to, overwrite));
      return void response.writeHead(outcome === "created" ? 201 : 204).end();
    }
    default:
      request.resume();
      return void response
        .writeHead(405, { allow: "OPTIONS, PROPFIND, GET, HEAD, PUT, DELETE, MKCOL, MOVE, COPY" })
        .end();
  }
}

async function propfind(view: VolumeView, path: string, request: IncomingMessage, response: ServerResponse) {
  request.resume();
  const depth = request.headers.depth ?? "infinity";
  if (depth !== "0" && depth !== "1") return void response.writeHead(403).end("only Depth 0 and 1 are served");
  const self = await view.stat(path);
  if (!self) return void response.writeHead(404).end();
  const entries = [self];
  if (depth === "1" && self.type === "dir") entries.push(...((await view.list(path)) ?? []));
  const body = `<?xml version="1.0" encoding="utf-8"?>\n<D:multistatus xmlns:D="DAV:">${entries.map(propResponse).join("")}</D:multistatus>\n`;
  response.writeHead(207, { "content-type": 'application/xml; charset="utf-8"' });
  response.end(body);
}

async function get(
  view: VolumeView,
  path: string,
  request: IncomingMessage,
  response: ServerResponse,
  headOnly: boolean,
) {
  request.resume();
  const entry = await view.stat(path);
  if (!entry) return void response.writeHead(404).end();
  if (entry.type === "dir") return void response.writeHead(405).end("a directory has no content");
  const headers = {
    "accept-ranges": "bytes",
    "last-modified": new Date(entry.mtimeMs).toUTCString(),
    etag: `"${entry.etag}"`,
    "content-type": "application/octet-stream",
  };
  const range = request.headers.range ? parseRange(request.headers.range, entry.size) : undefined;
  if (range === null) {
    return void response.writeHead(416, { ...headers, "content-range": `bytes */${entry.size}` }).end();
  }
  const length = range ? range.length : entry.size;
  response.writeHead(range ? 206 : 200, {
    ...headers,
    "content-length": String(length),
    ...(range ? { "content-range": `bytes ${range.offset}-${range.offset + length - 1}/${entry.size}` } : {}),
  });
  if (headOnly || length === 0) return void response.end();
  const stream = await view.read(path, range);
  await pipeline(stream, response).catch(() => {
    // The client hung up (rclone drops a read-ahead it no longer wants): nothing to answer.
    stream.destroy();
  });
}

/** One `bytes=` range, cut to the file; undefined when the header asks for none we serve, null when unsatisfiable. */
export function parseRange(header: string, size: number): ByteRange | undefined | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, first = "", last = ""] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Math.min(Number(last), size);
    return suffix === 0 ? null : { offset: size - suffix, length: suffix };
  }
  const offset = Number(first);
  if (offset >= size) return null;
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (end < offset) return null;
  return { offset, length: end - offset + 1 };
}

function propResponse(entry: VolumeEntry): string {
  const isDir = entry.type === "dir";
  const href =
    entry.path === "/" ? "/" : `${entry.path.split("/").map(encodeURIComponent).join("/")}${isDir ? "/" : ""}`;
  const props = [
    `<D:displayname>${escapeXml(baseName(entry.path))}</D:displayname>`,
    isDir ? "<D:resourcetype><D:collection/></D:resourcetype>" : "<D:resourcetype/>",
    isDir ? "" : `<D:getcontentlength>${entry.size}</D:getcontentlength>`,
    `<D:getlastmodified>${new Date(entry.mtimeMs).toUTCString()}</D:getlastmodified>`,
    `<D:getetag>"${escapeXml(entry.etag)}"</D:getetag>`,
  ].join("");
  return `<D:response><D:href>${escapeXml(href)}</D:href><D:propstat><D:prop>${props}</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`;
}

function requestPath(url: string): string {
  const pathname = url.split("?")[0] ?? "/";
  const decoded = decodeURIComponent(pathname);
  if (decoded.includes("\0")) throw new Error("NUL in path");
  return normalizeVolumePath(decoded);
}

function statusFor(method: string, error: VolumeViewError): number {
  if (error.code === "ENOENT" && (method === "PUT" || method === "MKCOL")) return 409;
  if (error.code === "EEXIST" && (method === "MOVE" || method === "COPY")) return 412;
  return STATUS_OF[error.code];
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
