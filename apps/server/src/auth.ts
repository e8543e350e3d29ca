import type { IncomingMessage } from "node:http";
import type { Principal, Scope, TokenStore } from "@skiff/store";
import type { Context, Hono, MiddlewareHandler } from "hono";
import { ApiError } from "./errors.js";

/** The Hono environment of the API: every handler after `authenticate` knows its caller. */
export interface AuthEnv {
  Variables: { caller: Principal };
}
export type Api = Hono<AuthEnv>;

/** Routes anyone may call: a liveness probe that says nothing about any workspace. */
const PUBLIC_PATHS = new Set(["/v1/health"]);

/**
 * What a container's token may do over HTTP: look up functions, move the payloads of calls, use the
 * volumes of its environment, and say who it is. Calls themselves go over the client WebSocket.
 */
const CONTAINER_ROUTES: [method: string, path: RegExp][] = [
  ["GET", /^\/v1\/whoami$/],
  ["GET", /^\/v1\/functions\/lookup$/],
  ["HEAD", /^\/v1\/blobs\/[^/]+$/],
  ["GET", /^\/v1\/blobs\/[^/]+$/],
  ["PUT", /^\/v1\/blobs\/[^/]+$/],
  // Volumes of its environment, as the SDK reads and writes them; deleting a whole volume is for users.
  ["GET", /^\/v1\/volumes(\/[^/]+(\/(history|files|stat|file))?)?$/],
  ["HEAD", /^\/v1\/volumes\/[^/]+\/file$/],
  ["POST", /^\/v1\/volumes(\/[^/]+\/(rollback|copy|commit))?$/],
  ["PUT", /^\/v1\/volumes\/[^/]+\/file$/],
  ["DELETE", /^\/v1\/volumes\/[^/]+\/file$/],
];
/** What an image build's token may do: use the volumes its steps mount (and move their chunks). */
const BUILD_ROUTES: [method: string, path: RegExp][] = CONTAINER_ROUTES.filter(
  ([, path]) => path.source.includes("volumes") || path.source.includes("blobs"),
);
const BUILD_LIMITS =
  "an image build's token only uses the volumes its steps mount, while the build lasts: use a user token";
const CONTAINER_LIMITS =
  "a container's token only calls functions and uses volumes of its own environment (and moves their payloads): do this from outside the container, with a user token";
const PROXY_LIMITS =
  "a proxy token only opens web endpoints that require proxy auth (as Skiff-Key and Skiff-Secret headers): use a user token for the API";

const NO_TOKEN =
  "this server needs a token: set SKIFF_TOKEN_ID and SKIFF_TOKEN_SECRET, or add a profile to config.toml in SKIFF_HOME (default ~/.skiff; an admin makes one with `skiff token create`)";
const BAD_TOKEN =
  "the token was not accepted: it is unknown to this server, revoked, or its secret is wrong; ask for a new one (`skiff token create`)";

/**
 * Who may call: tokens from the store, and the credential of the worker that runs in this process (made
 * at start, held in memory only).
 */
export class Authenticator {
  constructor(
    private readonly tokens: TokenStore,
    private readonly internalCredential: string,
  ) {}

  /** The caller an `Authorization: Bearer ID:SECRET` header speaks for; throws UNAUTHORIZED. */
  async principal(header: string | undefined): Promise<Principal> {
    const credential = header?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (!credential) throw new ApiError("UNAUTHORIZED", NO_TOKEN);
    if (credential === this.internalCredential) {
      return { tokenId: "in-process-worker", kind: "worker", workspace: undefined, admin: false };
    }
    const principal = await this.tokens.verify(credential);
    if (!principal) throw new ApiError("UNAUTHORIZED", BAD_TOKEN);
    return principal;
  }

  /** Hono middleware: sets `caller`, or answers 401. */
  middleware(): MiddlewareHandler<AuthEnv> {
    return async (c, next) => {
      if (PUBLIC_PATHS.has(c.req.path)) return next();
      const caller = await this.principal(c.req.header("authorization"));
      if (caller.kind === "proxy") throw new ApiError("FORBIDDEN", PROXY_LIMITS);
      if (caller.kind === "container") {
        const build = caller.container?.build === true;
        const routes = build ? BUILD_ROUTES : CONTAINER_ROUTES;
        if (!routes.some(([m, p]) => m === c.req.method && p.test(c.req.path))) {
          throw new ApiError("FORBIDDEN", build ? BUILD_LIMITS : CONTAINER_LIMITS);
        }
      }
      c.set("caller", caller);
      await next();
    };
  }

  /** A WebSocket upgrade's caller, if its token is of a `wanted` kind, or the error to answer it with. */
  async upgrade(request: IncomingMessage, wanted: Principal["kind"][]): Promise<Principal | ApiError> {
    try {
      const caller = await this.principal(request.headers.authorization);
      if (caller.container?.build) return new ApiError("FORBIDDEN", BUILD_LIMITS);
      if (wanted.includes(caller.kind)) return caller;
      const path = new URL(request.url ?? "/", "http://skiff").pathname;
      return new ApiError(
        "FORBIDDEN",
        `${path} is for ${wanted.join(" and ")} tokens, and this is a ${caller.kind} token`,
      );
    } catch (error) {
      return error instanceof ApiError ? error : new ApiError("INTERNAL", (error as Error).message);
    }
  }
}

/** The workspace of a user's or a container's token; workers' tokens act in none (FORBIDDEN). */
export function workspaceOf(caller: Principal): string {
  if (caller.kind === "worker" || !caller.workspace) {
    throw new ApiError("FORBIDDEN", "a worker token cannot act in a workspace: use a user token");
  }
  return caller.workspace;
}

/**
 * The caller's workspace with the environment a request names (`?env=`; default `main`, or a
 * container's own). A container's token acts in its own environment only.
 */
export function scopeOf(c: Context<AuthEnv>, env = c.req.query("env")): Scope {
  const caller = c.get("caller");
  const own = caller.container?.env;
  if (own !== undefined && env !== undefined && env !== own) {
    throw new ApiError("FORBIDDEN", `${CONTAINER_LIMITS} (its environment is "${own}", not "${env}")`);
  }
  return { workspace: workspaceOf(caller), env: env ?? own ?? "main" };
}

/** Routes for worker agents only. */
export function requireWorker(caller: Principal): void {
  if (caller.kind !== "worker") throw new ApiError("FORBIDDEN", "this route is for worker agents: use a worker token");
}

/** Routes that run the instance rather than a workspace. */
export function requireAdmin(caller: Principal): void {
  if (!caller.admin)
    throw new ApiError("FORBIDDEN", "this needs an admin token (the one the server made on first start)");
}

/** Open WebSockets by the token that opened them, so that revoking a token closes them. */
export class SocketsByToken {
  private readonly open = new Map<string, Set<{ close(code: number, reason: string): void }>>();

  add(tokenId: string, socket: { close(code: number, reason: string): void; once(e: "close", f: () => void): void }) {
    const sockets = this.open.get(tokenId) ?? new Set();
    this.open.set(tokenId, sockets);
    sockets.add(socket);
    socket.once("close", () => {
      sockets.delete(socket);
      if (sockets.size === 0) this.open.delete(tokenId);
    });
  }

  revoked(tokenId: string): void {
    for (const socket of this.open.get(tokenId) ?? []) socket.close(4401, "the token was revoked");
  }
}
