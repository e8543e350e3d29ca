import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "./db.js";
import { openPglite } from "./pglite/driver.js";
import { openPostgres } from "./postgres/driver.js";
import { LOCAL_WORKSPACE } from "./secrets.js";
import { Store } from "./store.js";
import { createTestDatabase, postgresReachable } from "./testing/postgres-fixture.js";
import { TokenError, type TokenStore } from "./tokens.js";

function describeTokenStore(name: string, open: () => Promise<{ db: Db; dispose: () => Promise<void> }>) {
  describe(`token store on ${name}`, () => {
    let db: Db;
    let dispose: () => Promise<void>;
    let tokens: TokenStore;
    beforeAll(async () => {
      ({ db, dispose } = await open());
      const store = new Store(db);
      await store.migrate();
      tokens = store.tokens;
    });
    afterAll(async () => {
      await db.close();
      await dispose();
    });

    it("verifies a token's id and secret, and keeps only the secret's hash", async () => {
      const { token, secret, credential } = await tokens.create({
        kind: "user",
        workspace: LOCAL_WORKSPACE,
        name: "ci",
      });
      expect(credential).toBe(`${token.id}:${secret}`);
      expect(await tokens.verify(credential)).toEqual({
        tokenId: token.id,
        kind: "user",
        workspace: LOCAL_WORKSPACE,
        admin: false,
      });
      for (const wrong of [`${token.id}:${secret}x`, `${token.id}:`, token.id, secret, "", `tk-nope:${secret}`]) {
        expect(await tokens.verify(wrong), wrong).toBeUndefined();
      }
      const dump = JSON.stringify(await db.query("SELECT * FROM tokens"));
      expect(dump).not.toContain(secret);
      expect(dump).not.toContain(secret.slice(3));
      expect((await tokens.get(token.id))?.lastUsedAt).toBeInstanceOf(Date);
    });

    it("accepts a container's token while the container lives, scoped to its app's environment", async () => {
      const store = new Store(db);
      const id = "ct-0123abcd-4567";
      const credential = await store.fleet.addContainer({
        id,
        workerId: "wk-1",
        functionId: "fu-1",
        version: 1,
        workspace: LOCAL_WORKSPACE,
        appId: "ap-1",
        env: "staging",
      });
      expect(await tokens.verify(credential)).toEqual({
        tokenId: id,
        kind: "container",
        workspace: LOCAL_WORKSPACE,
        admin: false,
        container: { id, appId: "ap-1", env: "staging" },
      });
      const secret = credential.slice(id.length + 1);
      expect(JSON.stringify(await db.query("SELECT * FROM containers"))).not.toContain(secret);
      for (const wrong of [`${id}:${secret}x`, `${id}:`, `ct-0123abcd-4568:${secret}`]) {
        expect(await tokens.verify(wrong), wrong).toBeUndefined();
      }
      await store.fleet.setContainerState(id, "running");
      expect((await tokens.verify(credential))?.kind).toBe("container");
      await store.fleet.setContainerState(id, "stopped", "idle");
      expect(await tokens.verify(credential)).toBeUndefined();
    });

    it("stops accepting a revoked token at once", async () => {
      const { token, credential } = await tokens.create({ kind: "user", workspace: LOCAL_WORKSPACE, name: "short" });
      expect(await tokens.revoke(token.id)).toBe(true);
      expect(await tokens.revoke(token.id)).toBe(false);
      expect(await tokens.verify(credential)).toBeUndefined();
      expect(
        (await tokens.list({ workspace: LOCAL_WORKSPACE })).find((t) => t.id === token.id)?.revokedAt,
      ).toBeInstanceOf(Date);
    });

    it("keeps workspaces apart, and worker tokens out of every workspace", async () => {
      const other = await tokens.createWorkspace("other");
      const envs = await db.query<{ name: string }>("SELECT name FROM environments WHERE workspace = $1", [other.id]);
      expect(envs.map((e) => e.name)).toEqual(["main"]);
      await expect(tokens.createWorkspace("other")).rejects.toThrow(/exists already/);
      await expect(tokens.createWorkspace("bad name!")).rejects.toBeInstanceOf(TokenError);
      const mine = await tokens.create({ kind: "user", workspace: other.id, name: "theirs" });
      expect((await tokens.list({ workspace: LOCAL_WORKSPACE })).map((t) => t.id)).not.toContain(mine.token.id);
      expect((await tokens.list({ workspace: other.id })).map((t) => t.id)).toEqual([mine.token.id]);

      const worker = await tokens.create({ kind: "worker", name: "host1" });
      expect(await tokens.verify(worker.credential)).toMatchObject({
        kind: "worker",
        workspace: undefined,
        admin: false,
      });
      expect((await tokens.list("workers")).map((t) => t.id)).toContain(worker.token.id);
      await expect(tokens.create({ kind: "worker", name: "x", workspace: other.id })).rejects.toThrow(/no workspace/);
      await expect(tokens.create({ kind: "user", name: "x" })).rejects.toThrow(/needs a workspace/);
      await expect(tokens.create({ kind: "user", name: "x", workspace: "ws-missing" })).rejects.toThrow(/no workspace/);
      await expect(tokens.create({ kind: "user", name: " ", workspace: other.id })).rejects.toThrow(/--name/);
    });

    it("makes proxy tokens of a workspace, which are never admin tokens", async () => {
      const proxy = await tokens.create({ kind: "proxy", workspace: LOCAL_WORKSPACE, name: "site" });
      expect(await tokens.verify(proxy.credential)).toMatchObject({ kind: "proxy", workspace: LOCAL_WORKSPACE });
      expect((await tokens.list({ workspace: LOCAL_WORKSPACE })).map((t) => t.id)).toContain(proxy.token.id);
      await expect(tokens.create({ kind: "proxy", name: "x" })).rejects.toThrow(/needs a workspace/);
      await expect(
        tokens.create({ kind: "proxy", name: "x", workspace: LOCAL_WORKSPACE, admin: true }),
      ).rejects.toThrow(/not an admin/);
    });
  });
}

describeTokenStore("pglite", async () => ({ db: await openPglite(), dispose: async () => {} }));

describe.skipIf(!(await postgresReachable()))("postgres", () => {
  describeTokenStore("postgres", async () => {
    const database = await createTestDatabase();
    return { db: await openPostgres(database.url), dispose: database.drop };
  });
});
