import { tokenRoutes, workspaceRoutes } from "@skiff/protocol";
import type { TokenStore } from "@skiff/store";
import { type Api, requireAdmin, type SocketsByToken, workspaceOf } from "../auth.js";
import { ApiError } from "../errors.js";
import { parseBody } from "./body.js";
import { parseQuery } from "./query.js";
import { serve } from "./serve.js";

/**
 * Tokens and workspaces. A user token manages the tokens of its own workspace; an admin token also makes
 * workspaces and worker tokens. A token of another workspace is "not found", as one that does not exist.
 */
export function serveTokens(api: Api, tokens: TokenStore, sockets: SocketsByToken, webBaseUrl?: string): void {
  serve(api, tokenRoutes.whoami, async (c) => {
    const caller = c.get("caller");
    const workspace = caller.workspace ? await tokens.getWorkspace(caller.workspace) : undefined;
    return {
      tokenId: caller.tokenId,
      kind: caller.kind,
      admin: caller.admin,
      workspace: workspace ?? null,
      webBaseUrl: webBaseUrl ?? null,
    };
  });

  serve(api, tokenRoutes.list, async (c) => {
    const caller = c.get("caller");
    if (parseQuery(c, tokenRoutes.list.query).kind === "worker") {
      requireAdmin(caller);
      return { tokens: await tokens.list("workers") };
    }
    return { tokens: await tokens.list({ workspace: workspaceOf(caller) }) };
  });

  serve(api, tokenRoutes.create, async (c) => {
    const caller = c.get("caller");
    const workspace = workspaceOf(caller);
    const body = await parseBody(c.req.raw, tokenRoutes.create.body);
    if (body.kind === "worker" || body.admin) requireAdmin(caller);
    if (body.proxy && (body.kind === "worker" || body.admin))
      throw new ApiError(
        "BAD_REQUEST",
        "a proxy token is neither a worker token nor an admin token: drop --worker/--admin",
      );
    const created = await tokens.create(
      body.kind === "worker"
        ? { kind: "worker", name: body.name }
        : { kind: body.proxy ? "proxy" : "user", name: body.name, workspace, admin: body.admin },
    );
    return created;
  });

  serve(api, tokenRoutes.revoke, async (c) => {
    const caller = c.get("caller");
    const workspace = workspaceOf(caller); // worker tokens revoke nothing
    const id = c.req.param("id");
    const token = await tokens.get(id);
    if (!token || !(token.kind === "worker" ? caller.admin : token.workspace === workspace)) {
      throw new ApiError("NOT_FOUND", `no token ${id} in this workspace: see \`skiff token list\``);
    }
    if (!(await tokens.revoke(id))) throw new ApiError("CONFLICT", `token ${id} was revoked already`);
    sockets.revoked(id);
    return { ok: true };
  });

  serve(api, workspaceRoutes.list, async (c) => {
    requireAdmin(c.get("caller"));
    return { workspaces: await tokens.listWorkspaces() };
  });

  // A new workspace and its first token (not an admin one): hand that to whoever will use it.
  serve(api, workspaceRoutes.create, async (c) => {
    requireAdmin(c.get("caller"));
    const { name } = await parseBody(c.req.raw, workspaceRoutes.create.body);
    const workspace = await tokens.createWorkspace(name);
    const created = await tokens.create({ kind: "user", name: `first token of ${name}`, workspace: workspace.id });
    return { workspace, ...created };
  });
}
