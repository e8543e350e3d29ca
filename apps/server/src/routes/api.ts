import type { ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { BlobError, type BlobStore } from "@skiff/blob";
import {
  appRoutes,
  blobRoutes,
  containerRoutes,
  type DeployedApp,
  type FunctionSpec,
  functionRoutes,
  HTTP_STATUS,
  healthRoute,
  imageArchives,
  imageRoutes,
  type LocalSecrets,
  layerRoutes,
} from "@skiff/protocol";
import type { Scope, Store, TokenStore } from "@skiff/store";
import { type Context, Hono } from "hono";
import {
  type Api,
  type AuthEnv,
  type Authenticator,
  requireWorker,
  type SocketsByToken,
  scopeOf,
  workspaceOf,
} from "../auth.js";
import type { ControlPlane } from "../engine/control-plane.js";
import { checkSchedule } from "../engine/scheduler.js";
import { readLocalSecrets } from "../engine/systems/secrets.js";
import { ApiError, apiErrorOf } from "../errors.js";
import { checkAppMounts } from "./app-mounts.js";
import { bodyOf, parseBody } from "./body.js";
import { BODY_LIMITS, declaredSize, tooLarge } from "./limits.js";
import { parseQuery } from "./query.js";
import { checkAppSecrets, type Secrets, serveSecrets } from "./secrets.js";
import { serve } from "./serve.js";
import { serveTokens } from "./tokens.js";
import { serveVolumes } from "./volumes.js";
import { checkWebLabels, LabelClaims } from "./web-labels.js";

/**
 * The HTTP API: apps, function lookup and blobs. Calls themselves go over the WebSocket. Every route but
 * /v1/health needs a token; what a user token names is looked up in its workspace only, and what is in
 * another workspace is "not found", worded as if it did not exist.
 */
export function apiRoutes(deps: {
  store: Store;
  blobs: BlobStore;
  control: ControlPlane;
  auth: Authenticator;
  tokens: TokenStore;
  sockets: SocketsByToken;
  secrets?: Secrets;
  /** The base URL of host routing, if the server has one (told to callers by `whoami`). */
  webBaseUrl?: string;
}): Api {
  const { store, blobs, control, secrets } = deps;
  const labels = new LabelClaims();
  const api = new Hono<AuthEnv>();

  api.onError((error, c) => {
    const refusal = apiErrorOf(error);
    return c.json(refusal.body(), HTTP_STATUS[refusal.code] as 400);
  });
  // A path the API does not have is a JSON NOT_FOUND; one it has, asked with another method, says which.
  api.notFound((c) => {
    const allowed = allowedMethods(api, c.req.path);
    if (allowed.length === 0)
      throw new ApiError("NOT_FOUND", `there is no API route ${c.req.path}: see docs/architecture.md`);
    c.header("allow", allowed.join(", "));
    throw new ApiError(
      "METHOD_NOT_ALLOWED",
      `${c.req.method} is not a method of ${c.req.path}: use ${allowed.join(" or ")}`,
    );
  });

  api.use(deps.auth.middleware());
  serve(api, healthRoute, () => ({ ok: true, workers: control.workerCount() }));

  serve(api, imageRoutes.build, async (c) => {
    const workspace = workspaceOf(c.get("caller"));
    const { image, export: exportIt, env } = await parseBody(c.req.raw, imageRoutes.build.body, BODY_LIMITS.manifest);
    const secrets = await control.imageSecrets({ workspace, env }, image);
    const volumes = await control.buildVolumes({ workspace, env }, image, true);
    for (const archive of imageArchives(image)) {
      if (!(await store.blobs.owns(workspace, archive))) {
        throw new ApiError("BAD_REQUEST", `local files ${archive} are not uploaded: PUT them to /v1/blobs/${archive}`);
      }
    }
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(stream) {
        const write = (text: string) => stream.enqueue(encoder.encode(`${text}\n`));
        control
          .buildImage(image, (lines) => write(lines.join("\n")), { export: exportIt, secrets, volumes })
          .then(async (exported) => {
            if (exported) await store.blobs.grant(workspace, [exported]);
            write(exported ? `ok ${exported}` : "ok");
          })
          .catch((error: Error) => write(`error: ${error.message}`))
          .finally(() => stream.close());
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
  });

  serve(api, layerRoutes.find, async (c) => {
    requireWorker(c.get("caller"));
    const digest = await store.blobs.findLayer(c.req.param("key"));
    if (!digest) throw new ApiError("NOT_FOUND", `no layer ${c.req.param("key")} has been published`);
    return { digest };
  });

  serve(api, layerRoutes.publish, async (c) => {
    requireWorker(c.get("caller"));
    const { digest } = await parseBody(c.req.raw, layerRoutes.publish.body);
    if (!/^[0-9a-f]{64}$/.test(c.req.param("key"))) throw new ApiError("BAD_REQUEST", "a layer key is a sha256");
    if (!(await blobs.has(digest))) throw new ApiError("BAD_REQUEST", `blob ${digest} is not uploaded`);
    await store.blobs.publishLayer(c.req.param("key"), digest);
    return { ok: true };
  });

  const needBundle = async (workspace: string, hash: string) => {
    if (!(await store.blobs.owns(workspace, hash))) {
      throw new ApiError("BAD_REQUEST", `bundle ${hash} is not uploaded: PUT it to /v1/blobs/${hash} first`);
    }
  };
  const findApp = async (scope: Scope, nameOrId: string) => {
    const app = await store.apps.find(scope, nameOrId);
    if (!app) {
      throw new ApiError(
        "NOT_FOUND",
        `no running app "${nameOrId}" in environment "${scope.env}": see \`skiff app list\``,
      );
    }
    return app;
  };
  const deploy = async (
    app: { workspace: string; name: string; env: string; bundleHash: string; functions: FunctionSpec[] },
    local: LocalSecrets,
    note = "",
  ): Promise<DeployedApp> => {
    // A schedule croner cannot read, or a secret that is not there, is refused before anything is written.
    for (const spec of app.functions) if (spec.schedule) checkSchedule(spec.schedule, `function "${spec.name}"`);
    control.checkCapacity(app.functions);
    const deployed = await labels.run(app, app.functions, async () => {
      await checkWebLabels(store, app, app.functions, app.name);
      const sealSecrets = await checkAppSecrets(secrets, app, app.functions, local);
      await checkAppMounts({ store, secrets }, app, app.functions, `deploy of app ${app.name}`);
      return store.apps.deploy({ ...app, note, ...(sealSecrets ? { sealSecrets } : {}) });
    });
    await control.deployed(deployed.app, deployed.functions);
    return {
      appId: deployed.app.id,
      version: deployed.app.version,
      previous: deployed.previous ?? null,
      functions: Object.fromEntries(deployed.functions.map((f) => [f.name, f.id])),
    };
  };

  // A new version of a deployed app. Its images are built by the caller first (POST /v1/images/build), so
  // a failed build never reaches here and the running version stays.
  serve(api, appRoutes.deploy, async (c) => {
    const body = await parseBody(c.req.raw, appRoutes.deploy.body, BODY_LIMITS.manifest);
    const workspace = workspaceOf(c.get("caller"));
    await needBundle(workspace, body.bundleHash);
    return deploy(
      {
        workspace,
        name: body.manifest.name,
        env: body.env,
        bundleHash: body.bundleHash,
        functions: body.manifest.functions,
      },
      body.localSecrets,
    );
  });

  serve(api, appRoutes.get, async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    return { app };
  });

  serve(api, appRoutes.schedules, async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    const schedules = await control.schedules(app.id);
    return { schedules };
  });

  serve(api, appRoutes.history, async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    const versions = await store.apps.versions(app.id);
    const labels = await store.apps.webLabelsOf([app.id]);
    return {
      app: { ...app, webLabels: labels.get(app.id) ?? [] },
      versions: versions.map((v) => ({
        version: v.version,
        bundleHash: v.bundleHash,
        functions: v.functions.map((f) => f.name),
        note: v.note,
        createdAt: v.createdAt,
        current: v.version === app.version,
      })),
    };
  });

  // Deploys an earlier version's code and spec again, as a new version.
  serve(api, appRoutes.rollback, async (c) => {
    const body = await parseBody(c.req.raw, appRoutes.rollback.body);
    const app = await findApp(scopeOf(c, body.env), c.req.param("app"));
    if (app.mode !== "deployed") throw new ApiError("BAD_REQUEST", `${app.name} is not deployed: it has no versions`);
    const versions = await store.apps.versions(app.id);
    const target = body.version ?? versions.find((v) => v.version < app.version)?.version;
    const chosen = versions.find((v) => v.version === target);
    if (!chosen) {
      throw new ApiError(
        "NOT_FOUND",
        target === undefined
          ? `${app.name} has only one version: there is nothing to roll back to`
          : `${app.name} has no version ${target}: see \`skiff app history ${app.name}\``,
      );
    }
    if (chosen.version === app.version) {
      throw new ApiError("BAD_REQUEST", `version ${chosen.version} of ${app.name} is the one running`);
    }
    await needBundle(app.workspace, chosen.bundleHash);
    const local = secrets ? await readLocalSecrets(store, secrets.store.box, app.id, chosen.version) : {};
    return deploy(
      {
        workspace: app.workspace,
        name: app.name,
        env: app.env,
        bundleHash: chosen.bundleHash,
        functions: chosen.functions,
      },
      local,
      `rollback to v${chosen.version}`,
    );
  });

  serveSecrets(api, secrets);
  serveVolumes(api, { store, blobs });
  serveTokens(api, deps.tokens, deps.sockets, deps.webBaseUrl);

  serve(api, containerRoutes.list, (c) => ({ containers: control.containers(workspaceOf(c.get("caller"))) }));

  serve(api, functionRoutes.updateAutoscaler, async (c) => {
    const patch = await parseBody(c.req.raw, functionRoutes.updateAutoscaler.body);
    const spec = await control.updateAutoscaler(workspaceOf(c.get("caller")), c.req.param("id"), patch);
    return {
      minContainers: spec.minContainers,
      maxContainers: spec.maxContainers,
      bufferContainers: spec.bufferContainers,
      scaledownWindowMs: spec.scaledownWindowMs,
    };
  });

  serve(api, appRoutes.create, async (c) => {
    const body = await parseBody(c.req.raw, appRoutes.create.body, BODY_LIMITS.manifest);
    const scope = scopeOf(c, body.env);
    await needBundle(scope.workspace, body.bundleHash);
    control.checkCapacity(body.manifest.functions);
    const { app, functions } = await labels.run(scope, body.manifest.functions, async () => {
      await checkWebLabels(store, scope, body.manifest.functions);
      const sealSecrets = await checkAppSecrets(secrets, scope, body.manifest.functions, body.localSecrets);
      await checkAppMounts({ store, secrets }, scope, body.manifest.functions, `app ${body.manifest.name}`);
      return store.apps.create({
        workspace: scope.workspace,
        name: body.manifest.name,
        env: body.env,
        mode: body.mode,
        bundleHash: body.bundleHash,
        functions: body.manifest.functions,
        ...(sealSecrets ? { sealSecrets } : {}),
      });
    });
    return { appId: app.id, functions: Object.fromEntries(functions.map((f) => [f.name, f.id])) };
  });

  // A new version of a run (`skiff serve` reloading its file): the rolling path of a deploy, same app id.
  serve(api, appRoutes.update, async (c) => {
    const body = await parseBody(c.req.raw, appRoutes.update.body, BODY_LIMITS.manifest);
    const app = await findApp(scopeOf(c, body.env), c.req.param("id"));
    if (app.mode === "deployed") {
      throw new ApiError("BAD_REQUEST", `${app.name} is deployed: make its new version with \`skiff deploy\``);
    }
    if (app.name !== body.manifest.name) {
      throw new ApiError(
        "BAD_REQUEST",
        `app ${app.id} is named "${app.name}", not "${body.manifest.name}": a new name is a new app (run it again)`,
      );
    }
    const own = { workspace: app.workspace, env: app.env };
    await needBundle(own.workspace, body.bundleHash);
    control.checkCapacity(body.manifest.functions);
    const added = await labels.run(own, body.manifest.functions, async () => {
      await checkWebLabels(store, own, body.manifest.functions, undefined, app.id);
      const sealSecrets = await checkAppSecrets(secrets, own, body.manifest.functions, body.localSecrets);
      await checkAppMounts({ store, secrets }, own, body.manifest.functions, `app ${app.name}`);
      return store.apps.addRunVersion(app.id, {
        bundleHash: body.bundleHash,
        functions: body.manifest.functions,
        ...(sealSecrets ? { sealSecrets } : {}),
      });
    });
    if (!added) throw new ApiError("NOT_FOUND", `app ${app.id} is not running: run it again`);
    await control.deployed(added.app, added.functions);
    return {
      appId: added.app.id,
      version: added.app.version,
      previous: added.previous,
      functions: Object.fromEntries(added.functions.map((f) => [f.name, f.id])),
    };
  });

  serve(api, appRoutes.list, async (c) => {
    const apps = await store.apps.list(scopeOf(c));
    const labels = await store.apps.webLabelsOf(apps.map((app) => app.id));
    return { apps: apps.map((app) => ({ ...app, webLabels: labels.get(app.id) ?? [] })) };
  });

  serve(api, appRoutes.heartbeat, async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("id"));
    await store.apps.touch(app.id);
    return { ok: true };
  });

  serve(api, appRoutes.stop, async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    await control.stopApp(app.id);
    return { ok: true, appId: app.id };
  });

  serve(api, functionRoutes.lookup, async (c) => {
    const { app, name, env } = parseQuery(c, functionRoutes.lookup.query);
    const scope = scopeOf(c, env);
    const fn = await store.apps.findFunction(scope, app, name);
    if (!fn) {
      const names = await store.apps.functionNamesOf(scope, app);
      throw new ApiError(
        "NOT_FOUND",
        names.length > 0
          ? `app "${app}" in environment "${scope.env}" has no function or class "${name}"; it has: ${names.join(", ")}`
          : `no running app "${app}" with function "${name}" in environment "${scope.env}": deploy it first`,
      );
    }
    return {
      functionId: fn.id,
      kind: fn.spec.kind,
      ...(fn.spec.cls ? { cls: fn.spec.cls } : {}),
      ...(fn.spec.generator ? { generator: true } : {}),
    };
  });

  // Blobs are stored once, and each workspace sees only those it put (or its functions returned); workers
  // see all of them.
  const mayRead = async (caller: AuthEnv["Variables"]["caller"], hash: string) =>
    caller.kind === "worker" || (await store.blobs.owns(workspaceOf(caller), hash));

  const headBlob = async (c: Context<AuthEnv>) => {
    const hash = c.req.param("hash") ?? "";
    return c.body(null, (await mayRead(c.get("caller"), hash)) && (await blobs.has(hash)) ? 200 : 404);
  };
  serve(api, blobRoutes.has, headBlob);

  serve(api, blobRoutes.get, async (c) => {
    // Hono answers a HEAD with the GET route: it must not open (and hash, and send) the blob.
    if (c.req.method === "HEAD") return headBlob(c);
    const hash = c.req.param("hash");
    const reader = (await mayRead(c.get("caller"), hash)) ? await blobs.getStream(hash) : undefined;
    if (!reader) throw new ApiError("NOT_FOUND", `no blob ${hash}`);
    const headers = { "content-type": "application/octet-stream", "content-length": String(reader.size) };
    // Under the HTTP server the file goes straight to the socket; a blob changed on disk cuts it short.
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!outgoing) return new Response(Readable.toWeb(reader.stream) as ReadableStream<Uint8Array>, { headers });
    outgoing.writeHead(200, headers);
    pipeline(reader.stream, outgoing).catch(() => {});
    return RESPONSE_ALREADY_SENT;
  });

  // The body streams to disk as it arrives, checked against the hash in the URL and the declared size;
  // without a Content-Length it may have BODY_LIMITS.blob bytes.
  serve(api, blobRoutes.put, async (c) => {
    const hash = c.req.param("hash");
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new ApiError("BAD_REQUEST", `"${hash}" is not a sha256 hex digest`);
    const size = declaredSize(c.req.raw, BODY_LIMITS.blob);
    await blobs.putStream(bodyOf(c), { hash, size, maxBytes: BODY_LIMITS.blob }).catch((error: Error) => {
      throw error instanceof BlobError && error.code === "BLOB_TOO_LARGE"
        ? tooLarge(BODY_LIMITS.blob, "the blob")
        : error;
    });
    const caller = c.get("caller");
    if (caller.kind !== "worker") await store.blobs.grant(workspaceOf(caller), [hash]);
    return { hash };
  });

  return api;
}

/** The methods `path` answers to (HEAD with GET), for a 405's `Allow`. */
function allowedMethods(api: Api, path: string): string[] {
  const methods = new Set<string>();
  for (const route of api.routes) {
    if (route.method === "ALL") continue;
    const pattern = new RegExp(`^${route.path.replace(/:[^/]+/g, "[^/]+")}$`);
    if (!pattern.test(path)) continue;
    methods.add(route.method);
    if (route.method === "GET") methods.add("HEAD");
  }
  return [...methods].sort();
}
