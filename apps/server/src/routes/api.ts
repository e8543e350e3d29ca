import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { BlobError, type BlobStore } from "@skiff/blob";
import {
  AppManifest,
  type FunctionSpec,
  HTTP_STATUS,
  ImageSpec,
  imageArchives,
  manifestProblem,
  RESOURCE_NAME,
} from "@skiff/protocol";
import type { Scope, Store, TokenStore } from "@skiff/store";
import { type Context, Hono } from "hono";
import { z } from "zod";
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
import { parseBody } from "./body.js";
import { BODY_LIMITS, declaredSize, tooLarge } from "./limits.js";
import { checkAppSecrets, LocalSecrets, type Secrets, secretRoutes } from "./secrets.js";
import { tokenRoutes } from "./tokens.js";

const Env = z.string().regex(RESOURCE_NAME, "environment names use letters, digits, '-' and '_'");

/** A manifest whose problems name the function and the option, not the field's path. */
const Manifest = z.unknown().transform((value, ctx) => {
  const parsed = AppManifest.safeParse(value);
  if (parsed.success) return parsed.data;
  ctx.addIssue({
    code: "custom",
    message: manifestProblem(value) ?? "the manifest is not valid",
    params: { bare: true },
  });
  return z.NEVER;
});

const CreateApp = z.object({
  manifest: Manifest,
  env: Env.default("main"),
  mode: z.enum(["ephemeral", "detached"]),
  bundleHash: z.string().regex(/^[0-9a-f]{64}$/),
  localSecrets: LocalSecrets,
});

const DeployApp = z.object({
  manifest: Manifest,
  env: Env.default("main"),
  bundleHash: z.string().regex(/^[0-9a-f]{64}$/),
  localSecrets: LocalSecrets,
});

const Autoscaler = z
  .object({
    minContainers: z.number().int().min(0),
    maxContainers: z.number().int().min(1),
    bufferContainers: z.number().int().min(0),
    scaledownWindowMs: z.number().int().min(0),
  })
  .partial();

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
}): Api {
  const { store, blobs, control, secrets } = deps;
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
  api.get("/v1/health", (c) => c.json({ ok: true, workers: control.workerCount() }));

  // Builds an image now, streaming its output as text lines; the last line is `ok` (with the blob of
  // the OCI layout when `export` is asked) or `error: …`.
  api.post("/v1/images/build", async (c) => {
    const workspace = workspaceOf(c.get("caller"));
    const {
      image,
      export: exportIt,
      env,
    } = await parseBody(
      c.req.raw,
      z.object({ image: ImageSpec, export: z.boolean().default(false), env: Env.default("main") }),
      BODY_LIMITS.manifest,
    );
    const secrets = await control.imageSecrets({ workspace, env }, image);
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
          .buildImage(image, (lines) => write(lines.join("\n")), { export: exportIt, secrets })
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

  // Layers workers built, by key: another worker fetches the blob instead of building it again.
  api.get("/v1/layers/:key", async (c) => {
    requireWorker(c.get("caller"));
    const digest = await store.blobs.findLayer(c.req.param("key"));
    if (!digest) throw new ApiError("NOT_FOUND", `no layer ${c.req.param("key")} has been published`);
    return c.json({ digest });
  });

  api.put("/v1/layers/:key", async (c) => {
    requireWorker(c.get("caller"));
    const { digest } = await parseBody(c.req.raw, z.object({ digest: z.string().regex(/^[0-9a-f]{64}$/) }));
    if (!/^[0-9a-f]{64}$/.test(c.req.param("key"))) throw new ApiError("BAD_REQUEST", "a layer key is a sha256");
    if (!(await blobs.has(digest))) throw new ApiError("BAD_REQUEST", `blob ${digest} is not uploaded`);
    await store.blobs.publishLayer(c.req.param("key"), digest);
    return c.json({ ok: true });
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
  ) => {
    // A schedule croner cannot read, or a secret that is not there, is refused before anything is written.
    for (const spec of app.functions) if (spec.schedule) checkSchedule(spec.schedule, `function "${spec.name}"`);
    control.checkCapacity(app.functions);
    const sealSecrets = await checkAppSecrets(secrets, app, app.functions, local);
    const deployed = await store.apps.deploy({ ...app, note, ...(sealSecrets ? { sealSecrets } : {}) });
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
  api.post("/v1/deploy", async (c) => {
    const body = await parseBody(c.req.raw, DeployApp, BODY_LIMITS.manifest);
    const workspace = workspaceOf(c.get("caller"));
    await needBundle(workspace, body.bundleHash);
    return c.json(
      await deploy(
        {
          workspace,
          name: body.manifest.name,
          env: body.env,
          bundleHash: body.bundleHash,
          functions: body.manifest.functions,
        },
        body.localSecrets,
      ),
    );
  });

  api.get("/v1/apps/:app", async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    return c.json({ app });
  });

  api.get("/v1/apps/:app/schedules", async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    const schedules = await control.schedules(app.id);
    return c.json({ schedules });
  });

  api.get("/v1/apps/:app/history", async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    const versions = await store.apps.versions(app.id);
    return c.json({
      app,
      versions: versions.map((v) => ({
        version: v.version,
        bundleHash: v.bundleHash,
        functions: v.functions.map((f) => f.name),
        note: v.note,
        createdAt: v.createdAt,
        current: v.version === app.version,
      })),
    });
  });

  // Deploys an earlier version's code and spec again, as a new version.
  api.post("/v1/apps/:app/rollback", async (c) => {
    const body = await parseBody(
      c.req.raw,
      z.object({ env: Env.default("main"), version: z.number().int().min(1).optional() }),
    );
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
    return c.json(
      await deploy(
        {
          workspace: app.workspace,
          name: app.name,
          env: app.env,
          bundleHash: chosen.bundleHash,
          functions: chosen.functions,
        },
        local,
        `rollback to v${chosen.version}`,
      ),
    );
  });

  secretRoutes(api, secrets);
  tokenRoutes(api, deps.tokens, deps.sockets);

  api.get("/v1/containers", (c) => c.json({ containers: control.containers(workspaceOf(c.get("caller"))) }));

  api.post("/v1/functions/:id/autoscaler", async (c) => {
    const patch = await parseBody(c.req.raw, Autoscaler);
    const spec = await control.updateAutoscaler(workspaceOf(c.get("caller")), c.req.param("id"), patch);
    return c.json({
      minContainers: spec.minContainers,
      maxContainers: spec.maxContainers,
      bufferContainers: spec.bufferContainers,
      scaledownWindowMs: spec.scaledownWindowMs,
    });
  });

  api.post("/v1/apps", async (c) => {
    const body = await parseBody(c.req.raw, CreateApp, BODY_LIMITS.manifest);
    const scope = scopeOf(c, body.env);
    await needBundle(scope.workspace, body.bundleHash);
    control.checkCapacity(body.manifest.functions);
    const sealSecrets = await checkAppSecrets(secrets, scope, body.manifest.functions, body.localSecrets);
    const { app, functions } = await store.apps.create({
      workspace: scope.workspace,
      name: body.manifest.name,
      env: body.env,
      mode: body.mode,
      bundleHash: body.bundleHash,
      functions: body.manifest.functions,
      ...(sealSecrets ? { sealSecrets } : {}),
    });
    return c.json({ appId: app.id, functions: Object.fromEntries(functions.map((f) => [f.name, f.id])) });
  });

  api.get("/v1/apps", async (c) => {
    const apps = await store.apps.list(scopeOf(c));
    return c.json({ apps });
  });

  api.post("/v1/apps/:id/heartbeat", async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("id"));
    await store.apps.touch(app.id);
    return c.json({ ok: true });
  });

  api.post("/v1/apps/:app/stop", async (c) => {
    const app = await findApp(scopeOf(c), c.req.param("app"));
    await control.stopApp(app.id);
    return c.json({ ok: true, appId: app.id });
  });

  api.get("/v1/functions/lookup", async (c) => {
    const { app, name } = c.req.query();
    if (!app || !name) throw new ApiError("BAD_REQUEST", "pass ?app=APP&name=FUNCTION");
    const scope = scopeOf(c);
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
    return c.json({ functionId: fn.id, kind: fn.spec.kind, ...(fn.spec.cls ? { cls: fn.spec.cls } : {}) });
  });

  // Blobs are stored once, and each workspace sees only those it put (or its functions returned); workers
  // see all of them.
  const mayRead = async (caller: AuthEnv["Variables"]["caller"], hash: string) =>
    caller.kind === "worker" || (await store.blobs.owns(workspaceOf(caller), hash));

  const headBlob = async (c: Context<AuthEnv>) => {
    const hash = c.req.param("hash") ?? "";
    return c.body(null, (await mayRead(c.get("caller"), hash)) && (await blobs.has(hash)) ? 200 : 404);
  };
  api.on("HEAD", "/v1/blobs/:hash", headBlob);

  api.get("/v1/blobs/:hash", async (c) => {
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
  api.put("/v1/blobs/:hash", async (c) => {
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
    return c.json({ hash });
  });

  return api;
}

/**
 * A request's body as bytes: straight from Node's request under the HTTP server (no web-stream layer on a
 * path that moves gigabytes), else from the Request (in-process calls).
 */
function bodyOf(c: Context<AuthEnv>): AsyncIterable<Uint8Array> {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (incoming) return incoming;
  return (c.req.raw.body ?? []) as AsyncIterable<Uint8Array>;
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
