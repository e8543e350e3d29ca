import { rename, unlink } from "node:fs/promises";
import {
  buildSecretsOf,
  environmentRoutes,
  type FunctionSpec,
  type LocalSecrets,
  REGISTRY_LOGIN_KEYS,
  registrySecretOf,
  secretRoutes,
} from "@skiff/protocol";
import type { Scope, SealSecrets, SecretStore } from "@skiff/store";
import { SecretBox, sealLocalSecrets } from "@skiff/store";
import { type Api, requireAdmin, scopeOf, workspaceOf } from "../auth.js";
import { buildSecretMissing, registryLoginMissing } from "../engine/systems/secrets.js";
import { ApiError } from "../errors.js";
import { parseBody } from "./body.js";
import { serve } from "./serve.js";

/** Named secrets; `store.box` also seals apps' local secret values (and follows a key rotation). */
export interface Secrets {
  store: SecretStore;
  /** The master key's file; undefined when the key comes from SKIFF_MASTER_KEY (then it cannot rotate). */
  keyFile?: string;
}

/**
 * Checks that an app may run in `scope` with these secrets: the environment exists, every named secret is
 * there with its required keys, and every local one came with its values. Returns how to seal the
 * local values with the version (undefined when there are none). Names keys, never values.
 */
export async function checkAppSecrets(
  secrets: Secrets | undefined,
  scope: Scope,
  functions: FunctionSpec[],
  local: LocalSecrets,
): Promise<SealSecrets | undefined> {
  if (!secrets) {
    if (functions.some((fn) => fn.secrets.length > 0 || registrySecretOf(fn.image) || buildSecretsOf(fn.image).length))
      throw new ApiError("UNAVAILABLE", "this server has no secret store");
    return undefined;
  }
  const { workspace, env } = scope;
  if (!(await secrets.store.hasEnvironment(env, workspace))) {
    throw new ApiError("NOT_FOUND", `no environment "${env}": create it with \`skiff env create ${env}\``);
  }
  const stored = new Map((await secrets.store.list(env, workspace)).map((s) => [s.name, new Set(s.keys)]));
  const used: LocalSecrets = {};
  for (const fn of functions) {
    const registry = registrySecretOf(fn.image);
    const missing = registry ? REGISTRY_LOGIN_KEYS.filter((key) => !stored.get(registry)?.has(key)) : [];
    if (registry && missing.length > 0) {
      throw new ApiError("BAD_REQUEST", `function "${fn.name}": ${registryLoginMissing(registry, env, missing)}`);
    }
    const absent = buildSecretsOf(fn.image).find((name) => !stored.has(name));
    if (absent) throw new ApiError("BAD_REQUEST", `function "${fn.name}": ${buildSecretMissing(absent, env)}`);
    for (const ref of fn.secrets) {
      if ("local" in ref) {
        const values = local[ref.local];
        if (!values)
          throw new ApiError("BAD_REQUEST", `function "${fn.name}": the values of a local secret were not sent`);
        used[ref.local] = values;
        continue;
      }
      const keys = stored.get(ref.name);
      if (!keys) {
        throw new ApiError(
          "BAD_REQUEST",
          `function "${fn.name}" needs the secret "${ref.name}", which is not in environment "${env}": create it with \`skiff secret create ${ref.name} KEY=value --env ${env}\``,
        );
      }
      const missing = ref.requiredKeys.filter((key) => !keys.has(key));
      if (missing.length > 0) {
        throw new ApiError(
          "BAD_REQUEST",
          `function "${fn.name}": the secret "${ref.name}" in environment "${env}" has no ${missing.join(", ")} (it has: ${[...keys].join(", ")}); set it with \`skiff secret create ${ref.name} ... --force --env ${env}\``,
        );
      }
    }
  }
  return Object.keys(used).length === 0 ? undefined : sealLocalSecrets(secrets.store.box, used);
}

/** Environments and named secrets. Values go in and never come back out. */
export function serveSecrets(api: Api, secrets: Secrets | undefined): void {
  const need = () => {
    if (!secrets) throw new ApiError("UNAVAILABLE", "this server has no secret store");
    return secrets;
  };
  let rotating: Promise<unknown> = Promise.resolve();

  // A new master key: everything sealed with the old one is sealed again, in one transaction, and the key
  // file is replaced (the old key stays in `.previous` until the transaction has committed).
  serve(api, secretRoutes.rotateKey, async (c) => {
    requireAdmin(c.get("caller"));
    const { store, keyFile } = need();
    if (!keyFile) {
      throw new ApiError(
        "BAD_REQUEST",
        "this server's master key comes from SKIFF_MASTER_KEY, which it cannot change: write that value to SKIFF_HOME/master.key (mode 0600), unset SKIFF_MASTER_KEY, restart the server and rotate again",
      );
    }
    const rotation = rotating.then(async () => {
      const next = SecretBox.generate();
      await SecretBox.writeKeyFile(keyFile, next);
      try {
        const counts = await store.rotate(next);
        await unlink(`${keyFile}.previous`);
        return { keyId: next.keyId, ...counts };
      } catch (error) {
        await rename(`${keyFile}.previous`, keyFile);
        throw error;
      }
    });
    rotating = rotation.catch(() => {});
    return rotation;
  });
  serve(api, environmentRoutes.list, async (c) => ({
    environments: await need().store.listEnvironments(workspaceOf(c.get("caller"))),
  }));
  serve(api, environmentRoutes.create, async (c) => {
    const workspace = workspaceOf(c.get("caller"));
    const { name } = await parseBody(c.req.raw, environmentRoutes.create.body);
    await need().store.createEnvironment(name, workspace);
    return { ok: true };
  });
  serve(api, environmentRoutes.delete, async (c) => {
    const workspace = workspaceOf(c.get("caller"));
    const name = c.req.param("name");
    if (!(await need().store.deleteEnvironment(name, workspace))) {
      throw new ApiError("NOT_FOUND", `no environment "${name}": see \`skiff env list\``);
    }
    return { ok: true };
  });

  serve(api, secretRoutes.list, async (c) => {
    const { workspace, env } = scopeOf(c);
    return { secrets: await need().store.list(env, workspace) };
  });
  serve(api, secretRoutes.create, async (c) => {
    const workspace = workspaceOf(c.get("caller"));
    const body = await parseBody(c.req.raw, secretRoutes.create.body);
    const created = await need().store.create(body.env, body.name, body.values, {
      overwrite: body.overwrite,
      workspace,
    });
    return { secret: created };
  });
  serve(api, secretRoutes.delete, async (c) => {
    const { workspace, env } = scopeOf(c);
    const name = c.req.param("name");
    if (!(await need().store.delete(env, name, workspace))) {
      throw new ApiError(
        "NOT_FOUND",
        `no secret "${name}" in environment "${env}": see \`skiff secret list --env ${env}\``,
      );
    }
    return { ok: true };
  });
}
