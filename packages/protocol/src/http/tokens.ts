import { z } from "zod";
import { route } from "./route.js";
import { Done, Instant } from "./wire.js";

/** A workspace: what user tokens act in. */
export const WorkspaceView = z.object({ id: z.string(), name: z.string(), createdAt: Instant });
export type WorkspaceView = z.output<typeof WorkspaceView>;

/** A token as listed: never its secret. */
export const TokenSummary = z.object({
  id: z.string(),
  name: z.string(),
  kind: z.enum(["user", "worker", "proxy"]),
  /** The workspace it acts in; absent for worker tokens. */
  workspace: z.string().optional(),
  admin: z.boolean(),
  createdAt: Instant,
  lastUsedAt: Instant.optional(),
  revokedAt: Instant.optional(),
});
export type TokenSummary = z.output<typeof TokenSummary>;

/** A new token, with its secret: shown this once. */
export const CreatedToken = z.object({ token: TokenSummary, secret: z.string(), credential: z.string() });
export type CreatedToken = z.output<typeof CreatedToken>;

/**
 * Tokens of the caller's workspace (worker tokens for admins), and who the caller is. A token of another
 * workspace is "not found", as one that does not exist.
 */
export const tokenRoutes = {
  whoami: route({
    method: "GET",
    path: "/v1/whoami",
    response: z.object({
      tokenId: z.string(),
      kind: z.enum(["user", "worker", "proxy", "container"]),
      admin: z.boolean(),
      workspace: WorkspaceView.nullable(),
      /** The base URL of host routing (`LABEL-APP.ENV.DOMAIN`), when the server has one (SKIFF_WEB_URL). */
      webBaseUrl: z.string().nullable().optional(),
    }),
  }),
  /** `?kind=worker` lists the worker tokens (admins only); otherwise the workspace's. */
  list: route({
    method: "GET",
    path: "/v1/tokens",
    query: z.object({ kind: z.string().optional() }),
    response: z.object({ tokens: z.array(TokenSummary) }),
  }),
  /**
   * A worker token, or an admin one, needs an admin token. `proxy`: a token that only opens the
   * workspace's web endpoints that require proxy auth (sent as `Skiff-Key`/`Skiff-Secret`).
   */
  create: route({
    method: "POST",
    path: "/v1/tokens",
    body: z.object({
      name: z.string(),
      kind: z.enum(["user", "worker"]).default("user"),
      admin: z.boolean().default(false),
      proxy: z.boolean().default(false),
    }),
    response: CreatedToken,
  }),
  /** Revokes a token: it stops working at once, open connections included. */
  revoke: route({ method: "DELETE", path: "/v1/tokens/:id", response: Done }),
};

/** Workspaces (admins only). */
export const workspaceRoutes = {
  list: route({ method: "GET", path: "/v1/workspaces", response: z.object({ workspaces: z.array(WorkspaceView) }) }),
  /** A new workspace and its first token (not an admin one). */
  create: route({
    method: "POST",
    path: "/v1/workspaces",
    body: z.object({ name: z.string() }),
    response: CreatedToken.extend({ workspace: WorkspaceView }),
  }),
};
