import type { BlobStore } from "@skiff/blob";
import { sha256 } from "@skiff/blob";
import { AppManifest, HTTP_STATUS, ImageSpec, imageArchives } from "@skiff/protocol";
import type { Store } from "@skiff/store";
import { Hono } from "hono";
import { z } from "zod";
import type { ControlPlane } from "../engine/control-plane.js";
import { ApiError } from "../errors.js";

const CreateApp = z.object({
  manifest: AppManifest,
  env: z.string().min(1).default("main"),
  mode: z.enum(["ephemeral", "deployed"]),
  bundleHash: z.string().regex(/^[0-9a-f]{64}$/),
});

async function parseBody<T extends z.ZodTypeAny>(request: Request, schema: T): Promise<z.infer<T>> {
  const body = await request.json().catch(() => {
    throw new ApiError("BAD_REQUEST", "the request body is not JSON");
  });
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ApiError("BAD_REQUEST", `${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  return parsed.data;
}

/** The public HTTP API: apps, function lookup and blobs. Calls themselves go over the WebSocket. */
export function apiRoutes(deps: { store: Store; blobs: BlobStore; control: ControlPlane }): Hono {
  const { store, blobs, control } = deps;
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

  api.post("/v1/apps", async (c) => {
    const body = await parseBody(c.req.raw, CreateApp);
    if (!(await blobs.has(body.bundleHash))) {
      throw new ApiError(
        "BAD_REQUEST",
        `bundle ${body.bundleHash} is not uploaded: PUT it to /v1/blobs/${body.bundleHash} first`,
      );
    }
    const { app, functions } = await store.createApp({
      name: body.manifest.name,
      env: body.env,
      mode: body.mode,
      bundleHash: body.bundleHash,
      functions: body.manifest.functions,
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

  api.post("/v1/apps/:id/stop", async (c) => {
    const app = await store.getApp(c.req.param("id"));
    if (!app) throw new ApiError("NOT_FOUND", `no app ${c.req.param("id")}: see \`skiff app list\``);
    await control.stopApp(app.id);
    return c.json({ ok: true });
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
    return c.json({ functionId: fn.id });
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
