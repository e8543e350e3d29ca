import type { TokenStore } from "@skiff/store";
import { z } from "zod";
import { type Api, requireAdmin, type SocketsByToken, workspaceOf } from "../auth.js";
import { ApiError } from "../errors.js";
import { parseBody } from "./body.js";

/**
 * Tokens and workspaces. A user token manages the tokens of its own workspace; an admin token also makes
 * workspaces and worker tokens. A token of another workspace is "not found", as one that does not exist.
 */
export function tokenRoutes(api: Api, tokens: TokenStore, sockets: SocketsByToken): void {
  api.get("/v1/whoami", async (c) => {
    const caller = c.get("caller");
    const workspace = caller.workspace ? await tokens.getWorkspace(caller.workspace) : undefined;
    return c.json({ tokenId: caller.tokenId, kind: caller.kind, admin: caller.admin, workspace: workspace ?? null });
  });

  api.get("/v1/tokens", async (c) => {
    const caller = c.get("caller");
    if (c.req.query("kind") === "worker") {
      requireAdmin(caller);
      return c.json({ tokens: await tokens.list("workers") });
    }
    return c.json({ tokens: await tokens.list({ workspace: workspaceOf(caller) }) });
  });

  api.post("/v1/tokens", async (c) => {
    const caller = c.get("caller");
    const workspace = workspaceOf(caller);
    const body = await parseBody(
      c.req.raw,
      z.object({
        name: z.string(),
        kind: z.enum(["user", "worker"]).default("user"),
        admin: z.boolean().default(false),
      }),
    );
    if (body.kind === "worker" || body.admin) requireAdmin(caller);
    const created = await tokens.create(
      body.kind === "worker"
        ? { kind: "worker", name: body.name }
        : { kind: "user", name: body.name, workspace, admin: body.admin },
    );
    return c.json(created);
  });

  api.delete("/v1/tokens/:id", async (c) => {
    const caller = c.get("caller");
    const workspace = workspaceOf(caller); // worker tokens revoke nothing
    const id = c.req.param("id");
    const token = await tokens.get(id);
    if (!token || !(token.kind === "worker" ? caller.admin : token.workspace === workspace)) {
      throw new ApiError("NOT_FOUND", `no token ${id} in this workspace: see \`skiff token list\``);
    }
    if (!(await tokens.revoke(id))) throw new ApiError("CONFLICT", `token ${id} was revoked already`);
    sockets.revoked(id);
    return c.json({ ok: true });
  });

  api.get("/v1/workspaces", async (c) => {
    requireAdmin(c.get("caller"));
    return c.json({ workspaces: await tokens.listWorkspaces() });
  });

  // A new workspace and its first token (not an admin one): hand that to whoever will use it.
  api.post("/v1/workspaces", async (c) => {
    requireAdmin(c.get("caller"));
    const { name } = await parseBody(c.req.raw, z.object({ name: z.string() }));
    const workspace = await tokens.createWorkspace(name);
    const created = await tokens.create({ kind: "user", name: `first token of ${name}`, workspace: workspace.id });
    return c.json({ workspace, ...created });
  });
}
