import type { ImageSpec } from "@skiff/protocol";
import { LOCAL_WORKSPACE, openPglite, Store } from "@skiff/store";
import { Hono } from "hono";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AuthEnv, Authenticator } from "../auth.js";
import { ControlPlane } from "./control-plane.js";
import { fakeWorker, testSpec } from "./test-spec.js";

const scope = { workspace: LOCAL_WORKSPACE, env: "main" };

/** An image whose one step mounts these volumes (`name` or `name?` for createIfMissing). */
function imageMounting(...names: string[]): ImageSpec {
  const volumes = names.map((name, i) => ({
    path: `/v${i}`,
    name: name.replace("?", ""),
    createIfMissing: !name.endsWith("?"),
  }));
  return {
    base: "debian-bookworm",
    nodeMajor: 20,
    layers: [{ key: "a".repeat(64), step: { kind: "run", commands: ["true"], volumes } }],
    mounts: [],
  };
}

/** The token an image build reaches volumes with: those of its steps, read-write, until the build ends. */
describe("build grants", () => {
  let store: Store;
  let control: ControlPlane;
  const { worker, sent, take } = fakeWorker();
  const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

  beforeEach(async () => {
    store = new Store(await openPglite());
    await store.migrate();
    control = new ControlPlane({ store, log: pino({ level: "silent" }) });
    await control.start();
    (worker.containers as Map<string, unknown>).clear();
    sent.length = 0;
    await control.workerConnected(worker, "process", [], []);
  });
  afterEach(async () => {
    await control.stop();
    await store.close();
  });

  it("an explicit build: refuses a missing volume as a deploy does, makes one marked createIfMissing, and reaches only those until it ends", async () => {
    await expect(control.buildVolumes(scope, imageMounting("cache", "absent?"), true)).rejects.toThrow(
      'an image step mounts the volume "absent", which is not in environment "main": create it with `skiff volume create absent --env main`, or declare it with Volume.fromName("absent", { createIfMissing: true })',
    );
    const image = imageMounting("cache");
    const volumes = await control.buildVolumes(scope, image, true);
    const cache = await store.volumes.find(scope, "cache");
    expect(cache).toBeDefined();
    const { volume: other } = await store.volumes.create(scope, "other", { author: "test" });
    expect(await control.buildVolumes(scope, imageMounting(), true)).toBeUndefined();

    const lines: string[] = [];
    const built = control.buildImage(image, (l) => lines.push(...l), { volumes });
    await settle();
    const [build] = take("build");
    const grant = build!.buildVolumes!;
    expect(grant.env).toBe("main");
    const principal = await store.tokens.verify(grant.token);
    expect(principal?.container).toMatchObject({ env: "main", build: true });
    const id = principal!.container!.id;
    expect(id).toMatch(/^bd-/);
    expect(await store.volumes.mountOf(id, cache!.id)).toEqual({ readOnly: false });
    expect(await store.volumes.mountOf(id, other.id)).toBeUndefined();
    // A build that uses a volume keeps it from being deleted, as a container mounting it does.
    await expect(store.volumes.delete(scope, "cache")).rejects.toThrow("mounted by running containers");

    // Its volumes' routes (and the blobs their chunks are), nothing else: no function lookups, no calls.
    const auth = new Authenticator(store.tokens, "in-process");
    const api = new Hono<AuthEnv>().use(auth.middleware());
    api.onError((error, c) => c.text(error.message, 403));
    api.get("/v1/volumes/:name", (c) => c.text("ok"));
    api.get("/v1/functions/lookup", (c) => c.text("ok"));
    const ask = async (path: string) =>
      (await api.request(path, { headers: { authorization: `Bearer ${grant.token}` } })).text();
    expect(await ask("/v1/volumes/cache")).toBe("ok");
    expect(await ask("/v1/functions/lookup")).toContain("an image build's token only uses the volumes its steps mount");
    const socket = await auth.upgrade(
      { headers: { authorization: `Bearer ${grant.token}` }, url: "/v1/client" } as never,
      ["user", "container"],
    );
    expect(socket).toBeInstanceOf(Error);

    await control.workerMessage(worker, { t: "build-done", rid: build!.rid, error: "step 1 failed" });
    await expect(built).rejects.toThrow("step 1 failed");
    expect(await store.tokens.verify(grant.token)).toBeUndefined();
  });

  it("a container's start: its build reaches the volumes that are there until the container has started", async () => {
    await store.volumes.create(scope, "cache", { author: "test" });
    const deployed = await store.apps.deploy({
      workspace: LOCAL_WORKSPACE,
      name: "svc",
      env: "main",
      bundleHash: "b1",
      // One since deleted and not createIfMissing is left out: the layer may be built already.
      functions: [testSpec({ image: imageMounting("cache?", "gone?"), minContainers: 1 })],
    });
    await control.deployed(deployed.app, deployed.functions);
    await settle();
    const [start] = take("start");
    expect(start).toBeDefined();
    const principal = await store.tokens.verify(start!.buildVolumes!.token);
    const id = principal!.container!.id;
    expect(id).toBe(`bd-${start!.containerId.slice(3)}`);
    expect(await store.volumes.mountOf(id, (await store.volumes.find(scope, "cache"))!.id)).toEqual({
      readOnly: false,
    });
    await control.workerMessage(worker, { t: "started", containerId: start!.containerId });
    expect(await store.tokens.verify(start!.buildVolumes!.token)).toBeUndefined();
    // The container's own token reaches none of them.
    const own = await store.tokens.verify(start!.token);
    expect(await store.volumes.mountOf(own!.container!.id, (await store.volumes.find(scope, "cache"))!.id)).toBe(
      undefined,
    );
  });
});
