import type { BlobStore } from "@skiff/blob";
import { sha256 } from "@skiff/blob";
import { AppManifest, type FunctionSpec, HTTP_STATUS, ImageSpec, imageArchives, RESOURCE_NAME } from "@skiff/protocol";
import type { Store } from "@skiff/store";
import { Hono } from "hono";
import { z } from "zod";
import type { ControlPlane } from "../engine/control-plane.js";
import { readLocalSecrets } from "../engine/local-secrets.js";
import { checkSchedule } from "../engine/scheduler.js";
import { ApiError } from "../errors.js";
import { parseBody } from "./body.js";
import { checkAppSecrets, LocalSecrets, type Secrets, secretRoutes } from "./secrets.js";

const Env = z.string().regex(RESOURCE_NAME, "environment names use letters, digits, '-' and '_'");

const CreateApp = z.object({
  manifest: AppManifest,
  env: Env.default("main"),
  mode: z.enum(["ephemeral", "detached"]),
  bundleHash: z.string().regex(/^[0-9a-f]{64}$/),
  localSecrets: LocalSecrets,
});

const DeployApp = z.object({
  manifest: AppManifest,
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

/** The public HTTP API: apps, function lookup and blobs. Calls themselves go over the WebSocket. */
export function apiRoutes(deps: { store: Store; blobs: BlobStore; control: ControlPlane; secrets?: Secrets }): Hono {
  const { store, blobs, control, secrets } = deps;
  const api = new Hono();

  api.onError((error, c) => {
    if (error instanceof ApiError) {
      return c.json({ error: { code: error.code, message: error.message } }, HTTP_STATUS[error.code] as 400);
    }
    return c.json({ error: { code: "INTERNAL", message: error.message } }, 500);
  });

  api.get("/v1/health", (c) => c.json({ ok: true, workers: control.workers.all().length }));

  // Builds an image now, streaming its output as text lines; the last line is `ok` (with the blob of
  // the OCI layout when `export` is asked) or `error: …`.
  api.post("/v1/images/build", async (c) => {
    const { image, export: exportIt } = await parseBody(
      c.req.raw,
      z.object({ image: ImageSpec, export: z.boolean().default(false) }),
    );
    for (const archive of imageArchives(image)) {
      if (!(await blobs.has(archive))) {
        throw new ApiError("BAD_REQUEST", `local files ${archive} are not uploaded: PUT them to /v1/blobs/${archive}`);
      }
    }
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(stream) {
        const write = (text: string) => stream.enqueue(encoder.encode(`${text}\n`));
        control
          .buildImage(image, (lines) => write(lines.join("\n")), { export: exportIt })
          .then(
            (exported) => write(exported ? `ok ${exported}` : "ok"),
            (error: Error) => write(`error: ${error.message}`),
          )
          .finally(() => stream.close());
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain; charset=utf-8" } });
  });

  // Layers workers built, by key: another worker fetches the blob instead of building it again.
  api.get("/v1/layers/:key", async (c) => {
    const digest = await store.findLayer(c.req.param("key"));
    if (!digest) throw new ApiError("NOT_FOUND", `no layer ${c.req.param("key")} has been published`);
    return c.json({ digest });
  });

  api.put("/v1/layers/:key", async (c) => {
    const { digest } = await parseBody(c.req.raw, z.object({ digest: z.string().regex(/^[0-9a-f]{64}$/) }));
    if (!/^[0-9a-f]{64}$/.test(c.req.param("key"))) throw new ApiError("BAD_REQUEST", "a layer key is a sha256");
    if (!(await blobs.has(digest))) throw new ApiError("BAD_REQUEST", `blob ${digest} is not uploaded`);
    await store.publishLayer(c.req.param("key"), digest);
    return c.json({ ok: true });
  });

  const needBundle = async (hash: string) => {
    if (!(await blobs.has(hash))) {
      throw new ApiError("BAD_REQUEST", `bundle ${hash} is not uploaded: PUT it to /v1/blobs/${hash} first`);
    }
  };
  const findApp = async (env: string, nameOrId: string) => {
    const app = await store.findApp(env, nameOrId);
    if (!app) {
      throw new ApiError("NOT_FOUND", `no running app "${nameOrId}" in environment "${env}": see \`skiff app list\``);
    }
    return app;
  };
  const deploy = async (
    app: { name: string; env: string; bundleHash: string; functions: FunctionSpec[] },
    local: LocalSecrets,
    note = "",
  ) => {
    // A schedule croner cannot read, or a secret that is not there, is refused before anything is written.
    for (const spec of app.functions) if (spec.schedule) checkSchedule(spec.schedule, `function "${spec.name}"`);
    const sealSecrets = await checkAppSecrets(secrets, app.env, app.functions, local);
    const deployed = await store.deployApp({ ...app, note, ...(sealSecrets ? { sealSecrets } : {}) });
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
    const body = await parseBody(c.req.raw, DeployApp);
    await needBundle(body.bundleHash);
    return c.json(
      await deploy(
        {
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
    const app = await findApp(c.req.query("env") ?? "main", c.req.param("app"));
    return c.json({ app });
  });

  api.get("/v1/apps/:app/schedules", async (c) => {
    const app = await findApp(c.req.query("env") ?? "main", c.req.param("app"));
    const schedules = await control.scheduler.list({ appId: app.id });
    return c.json({ schedules });
  });

  api.get("/v1/apps/:app/history", async (c) => {
    const app = await findApp(c.req.query("env") ?? "main", c.req.param("app"));
    const versions = await store.appVersions(app.id);
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
    const app = await findApp(body.env, c.req.param("app"));
    if (app.mode !== "deployed") throw new ApiError("BAD_REQUEST", `${app.name} is not deployed: it has no versions`);
    const versions = await store.appVersions(app.id);
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
    await needBundle(chosen.bundleHash);
    const local = secrets ? await readLocalSecrets(store, secrets.store.box, app.id, chosen.version) : {};
    return c.json(
      await deploy(
        { name: app.name, env: app.env, bundleHash: chosen.bundleHash, functions: chosen.functions },
        local,
        `rollback to v${chosen.version}`,
      ),
    );
  });

  secretRoutes(api, secrets);

  api.get("/v1/containers", (c) => c.json({ containers: control.containers() }));

  api.post("/v1/functions/:id/autoscaler", async (c) => {
    const patch = await parseBody(c.req.raw, Autoscaler);
    const spec = await control.updateAutoscaler(c.req.param("id"), patch);
    return c.json({
      minContainers: spec.minContainers,
      maxContainers: spec.maxContainers,
      bufferContainers: spec.bufferContainers,
      scaledownWindowMs: spec.scaledownWindowMs,
    });
  });

  api.post("/v1/apps", async (c) => {
    const body = await parseBody(c.req.raw, CreateApp);
    await needBundle(body.bundleHash);
    const sealSecrets = await checkAppSecrets(secrets, body.env, body.manifest.functions, body.localSecrets);
    const { app, functions } = await store.createApp({
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
    const apps = await store.listApps(c.req.query("env") ?? "main");
    return c.json({ apps });
  });

  api.post("/v1/apps/:id/heartbeat", async (c) => {
    await store.touchApp(c.req.param("id"));
    return c.json({ ok: true });
  });

  api.post("/v1/apps/:app/stop", async (c) => {
    const app = await findApp(c.req.query("env") ?? "main", c.req.param("app"));
    await control.stopApp(app.id);
    return c.json({ ok: true, appId: app.id });
  });

  api.get("/v1/functions/lookup", async (c) => {
    const { app, name, env = "main" } = c.req.query();
    if (!app || !name) throw new ApiError("BAD_REQUEST", "pass ?app=APP&name=FUNCTION");
    const fn = await store.findFunction(env, app, name);
    if (!fn)
      throw new ApiError(
        "NOT_FOUND",
        `no running app "${app}" with function "${name}" in environment "${env}": deploy it first`,
      );
    return c.json({ functionId: fn.id, kind: fn.spec.kind, ...(fn.spec.cls ? { cls: fn.spec.cls } : {}) });
  });

  api.on("HEAD", "/v1/blobs/:hash", async (c) => c.body(null, (await blobs.has(c.req.param("hash"))) ? 200 : 404));

  api.get("/v1/blobs/:hash", async (c) => {
    const bytes = await blobs.get(c.req.param("hash"));
    if (!bytes) throw new ApiError("NOT_FOUND", `no blob ${c.req.param("hash")}`);
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { "content-type": "application/octet-stream" });
  });

  api.put("/v1/blobs/:hash", async (c) => {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (sha256(bytes) !== c.req.param("hash")) {
      throw new ApiError("BAD_REQUEST", "the blob's sha256 does not match its URL: upload the bytes you hashed");
    }
    await blobs.put(bytes);
    return c.json({ hash: c.req.param("hash") });
  });

  return api;
}
