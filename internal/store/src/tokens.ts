import { createHash, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { CodedError } from "@skiff/protocol/coded-error";
import { RESOURCE_NAME } from "@skiff/protocol/constants";
import type { Db } from "./db.js";
import { DEFAULT_ENVIRONMENT } from "./secrets.js";

/**
 * user: acts in one workspace (admin ones also run the instance); worker: lets a worker agent join; proxy:
 * only opens a workspace's web endpoints that require proxy auth (`Skiff-Key`/`Skiff-Secret`), never the API.
 */
export type TokenKind = "user" | "worker" | "proxy";

export interface Workspace {
  id: string;
  name: string;
  createdAt: Date;
}

/** A token as listed: never its secret. */
export interface TokenSummary {
  id: string;
  name: string;
  kind: TokenKind;
  /** The workspace it acts in; undefined for worker tokens. */
  workspace: string | undefined;
  admin: boolean;
  createdAt: Date;
  lastUsedAt: Date | undefined;
  revokedAt: Date | undefined;
}

/**
 * Who a verified token speaks for. A container's token (kind `container`) acts in its app's workspace
 * and environment only, for as long as the container lives.
 */
export interface Principal {
  tokenId: string;
  kind: TokenKind | "container";
  workspace: string | undefined;
  admin: boolean;
  /**
   * Set for a container's token: the container, its app and the environment it may act in. `build`: the
   * token of an image build (a `bd-` id), which reaches the volumes its steps mount and nothing else.
   */
  container?: { id: string; appId: string; env: string; build?: true };
}

/** What went wrong with a workspace or a token: `code` picks the HTTP status. */
export class TokenError extends CodedError<"NOT_FOUND" | "CONFLICT" | "BAD_REQUEST"> {
  constructor(code: TokenError["code"], message: string) {
    super(code, message);
    this.name = "TokenError";
  }
}

/** Last-use times are written at most this often per token, so that verifying stays a read. */
const LAST_USED_EVERY_MS = 60_000;

const TOKEN_ID = /^tk-[0-9a-f]{20}$/;
/** Container ids (`ct-` and part of a UUID) are the ids of their tokens. */
/** Containers (`ct-`) and image builds that mount volumes (`bd-`), whose tokens live in the containers table. */
const CONTAINER_ID = /^(ct|bd)-[0-9a-f-]{8,36}$/;

/**
 * Workspaces and their API tokens. A token is an id (shown in lists) and a secret (shown once, at
 * creation); the store keeps the secret's SHA-256 only. A credential travels as `ID:SECRET`.
 *
 * @example
 * const { tokens } = new Store(db);
 * const { token, secret } = await tokens.create({ kind: "user", workspace: LOCAL_WORKSPACE, name: "ci" });
 * await tokens.verify(`${token.id}:${secret}`); // { tokenId, kind: "user", workspace: "ws-local", admin: false }
 */
export class TokenStore {
  /** When each token's last use was written, by id. */
  readonly #lastUseWritten = new Map<string, number>();

  constructor(private readonly db: Db) {}

  // ---- workspaces ----

  /** A new workspace, with its `main` environment. */
  async createWorkspace(name: string): Promise<Workspace> {
    if (!RESOURCE_NAME.test(name)) {
      throw new TokenError(
        "BAD_REQUEST",
        `workspace name ${JSON.stringify(name)} is not valid: use letters, digits, '-' and '_', at most 63, starting with a letter or digit`,
      );
    }
    return this.db.transaction(async (tx) => {
      const id = `ws-${randomUUID()}`;
      const [row] = await tx.query<WorkspaceRow>(
        "INSERT INTO workspaces (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
        [id, name],
      );
      if (!row) throw new TokenError("CONFLICT", `a workspace named "${name}" exists already`);
      await tx.query("INSERT INTO environments (workspace, name) VALUES ($1, $2)", [id, DEFAULT_ENVIRONMENT]);
      return toWorkspace(row);
    });
  }

  async listWorkspaces(): Promise<Workspace[]> {
    const rows = await this.db.query<WorkspaceRow>("SELECT id, name, created_at FROM workspaces ORDER BY name");
    return rows.map(toWorkspace);
  }

  async getWorkspace(id: string): Promise<Workspace | undefined> {
    const [row] = await this.db.query<WorkspaceRow>("SELECT id, name, created_at FROM workspaces WHERE id = $1", [id]);
    return row ? toWorkspace(row) : undefined;
  }

  // ---- tokens ----

  /** A new token; its secret is returned here and never again. */
  async create(token: {
    kind: TokenKind;
    name: string;
    workspace?: string;
    admin?: boolean;
  }): Promise<{ token: TokenSummary; secret: string; credential: string }> {
    if (token.kind === "worker" && (token.workspace !== undefined || token.admin)) {
      throw new TokenError("BAD_REQUEST", "a worker token belongs to no workspace and is not an admin token");
    }
    if (token.kind !== "worker" && token.workspace === undefined) {
      throw new TokenError("BAD_REQUEST", `a ${token.kind} token needs a workspace`);
    }
    if (token.kind === "proxy" && token.admin)
      throw new TokenError("BAD_REQUEST", "a proxy token is not an admin token");
    const name = token.name.trim();
    if (name.length === 0 || name.length > 100) {
      throw new TokenError("BAD_REQUEST", "a token's name is 1 to 100 characters: say what uses it, e.g. --name ci");
    }
    const id = `tk-${randomBytes(10).toString("hex")}`;
    const { secret, sha256 } = newSecret();
    const [row] = await this.db.query<TokenRow>(
      `INSERT INTO tokens (id, workspace, kind, name, admin, secret_sha256)
       SELECT $1, $2, $3, $4, $5, $6 WHERE $2::text IS NULL OR EXISTS (SELECT 1 FROM workspaces WHERE id = $2)
       RETURNING ${TOKEN_COLUMNS}`,
      [id, token.workspace ?? null, token.kind, name, token.admin ?? false, sha256],
    );
    if (!row) throw new TokenError("NOT_FOUND", `no workspace ${token.workspace}`);
    return { token: toToken(row), secret, credential: `${id}:${secret}` };
  }

  /** The user tokens of a workspace, or (`"workers"`) the worker tokens; newest first. */
  async list(of: { workspace: string } | "workers"): Promise<TokenSummary[]> {
    const rows =
      of === "workers"
        ? await this.db.query<TokenRow>(
            `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE kind = 'worker' ORDER BY created_at DESC`,
          )
        : await this.db.query<TokenRow>(
            `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE workspace = $1 ORDER BY created_at DESC`,
            [of.workspace],
          );
    return rows.map(toToken);
  }

  async get(id: string): Promise<TokenSummary | undefined> {
    const [row] = await this.db.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = $1`, [id]);
    return row ? toToken(row) : undefined;
  }

  /** Revokes a token for good; false if there is no such token, or it was revoked already. */
  async revoke(id: string): Promise<boolean> {
    const rows = await this.db.query(
      "UPDATE tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id",
      [id],
    );
    return rows.length > 0;
  }

  /**
   * Who `credential` (`ID:SECRET`) speaks for, or undefined when it is malformed, unknown, revoked or
   * its secret does not match. The comparison takes the same time whatever the secret.
   */
  async verify(credential: string): Promise<Principal | undefined> {
    const colon = credential.indexOf(":");
    const id = credential.slice(0, colon);
    if (colon < 0) return undefined;
    if (CONTAINER_ID.test(id)) return this.verifyContainer(id, credential.slice(colon + 1));
    if (!TOKEN_ID.test(id)) return undefined;
    const [row] = await this.db.query<TokenRow & { secret_sha256: string }>(
      `SELECT ${TOKEN_COLUMNS}, secret_sha256 FROM tokens WHERE id = $1`,
      [id],
    );
    if (!row || row.revoked_at !== null || !sameDigest(credential.slice(colon + 1), row.secret_sha256))
      return undefined;
    const now = Date.now();
    if (now - (this.#lastUseWritten.get(id) ?? 0) > LAST_USED_EVERY_MS) {
      this.#lastUseWritten.set(id, now);
      await this.db.query("UPDATE tokens SET last_used_at = now() WHERE id = $1", [id]);
    }
    return { tokenId: id, kind: row.kind, workspace: row.workspace ?? undefined, admin: row.admin };
  }

  /** A container's token: good while the container has not stopped (see FleetStore.addContainer). */
  private async verifyContainer(id: string, secret: string): Promise<Principal | undefined> {
    const [row] = await this.db.query<{ token_sha256: string; workspace: string; app_id: string; env: string }>(
      "SELECT token_sha256, workspace, app_id, env FROM containers WHERE id = $1 AND state <> 'stopped' AND token_sha256 IS NOT NULL",
      [id],
    );
    if (!row || !sameDigest(secret, row.token_sha256)) return undefined;
    return {
      tokenId: id,
      kind: "container",
      workspace: row.workspace,
      admin: false,
      container: { id, appId: row.app_id, env: row.env, ...(id.startsWith("bd-") ? { build: true as const } : {}) },
    };
  }
}

/** A new token secret (256 random bits) and the SHA-256 the store keeps of it. */
export function newSecret(): { secret: string; sha256: string } {
  const secret = `sk-${randomBytes(32).toString("base64url")}`;
  return { secret, sha256: digest(secret) };
}

/** Whether `secret` hashes to `sha256`, in the same time whatever the secret. */
function sameDigest(secret: string, sha256: string): boolean {
  return timingSafeEqual(Buffer.from(digest(secret), "hex"), Buffer.from(sha256, "hex"));
}

interface WorkspaceRow {
  id: string;
  name: string;
  created_at: Date | string;
}

interface TokenRow {
  id: string;
  name: string;
  kind: TokenKind;
  workspace: string | null;
  admin: boolean;
  created_at: Date | string;
  last_used_at: Date | string | null;
  revoked_at: Date | string | null;
}

const TOKEN_COLUMNS = "id, name, kind, workspace, admin, created_at, last_used_at, revoked_at";

function toWorkspace(row: WorkspaceRow): Workspace {
  return { id: row.id, name: row.name, createdAt: new Date(row.created_at) };
}

function toToken(row: TokenRow): TokenSummary {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    workspace: row.workspace ?? undefined,
    admin: row.admin,
    createdAt: new Date(row.created_at),
    lastUsedAt: row.last_used_at === null ? undefined : new Date(row.last_used_at),
    revokedAt: row.revoked_at === null ? undefined : new Date(row.revoked_at),
  };
}

function digest(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}
