import { z } from "zod";
import { AppManifest, manifestProblem, Schedule } from "../manifest.js";
import { route } from "./route.js";
import { LocalSecrets } from "./secrets.js";
import { Done, EnvName, EnvQuery, Instant, Sha256 } from "./wire.js";

/** A manifest whose problems name the function and the option, not the field's path. */
const Manifest = z.custom<z.input<typeof AppManifest>>().transform((value, ctx) => {
  const parsed = AppManifest.safeParse(value);
  if (parsed.success) return parsed.data;
  ctx.addIssue({
    code: "custom",
    message: manifestProblem(value) ?? "the manifest is not valid",
    params: { bare: true },
  });
  return z.NEVER;
});

/** An app as listed. */
export const AppSummary = z.object({
  id: z.string(),
  workspace: z.string(),
  name: z.string(),
  env: z.string(),
  /** ephemeral: stops when its client goes; detached: `run --detach`; deployed: versioned, by name. */
  mode: z.enum(["ephemeral", "detached", "deployed"]),
  state: z.enum(["running", "stopped"]),
  bundleHash: z.string(),
  /** The version that runs now (deployed apps count their deploys; others stay at 1). */
  version: z.number(),
  createdAt: Instant,
  /** The labels of its web functions in the version that runs now (their URLs: see web-url.ts); listed apps only. */
  webLabels: z.array(z.string()).optional(),
});
export type AppSummary = z.output<typeof AppSummary>;

/** A new version of a deployed app: its id, its number, the one it replaces, and its functions' ids by name. */
export const DeployedApp = z.object({
  appId: z.string(),
  version: z.number(),
  previous: z.number().nullable(),
  functions: z.record(z.string()),
});
export type DeployedApp = z.output<typeof DeployedApp>;

/** A deployed function's schedule, what it did last and when it runs next (ms since the epoch). */
export const ScheduleView = z.object({
  functionId: z.string(),
  appId: z.string(),
  /** The function's name (absent if its row is gone). */
  functionName: z.string().optional(),
  schedule: Schedule,
  anchorMs: z.number(),
  lastTickMs: z.number().optional(),
  lastOutcome: z.enum(["started", "skipped", "failed"]).optional(),
  lastError: z.string().optional(),
  lastRunMs: z.number().optional(),
  lastCallId: z.string().optional(),
  skippedTicks: z.number(),
  nextRunMs: z.number().optional(),
});
export type ScheduleView = z.output<typeof ScheduleView>;

/** One deploy of an app, as its history lists it. */
export const AppVersionView = z.object({
  version: z.number(),
  bundleHash: z.string(),
  functions: z.array(z.string()),
  /** e.g. "rollback to v2". */
  note: z.string(),
  createdAt: Instant,
  /** The version that runs now. */
  current: z.boolean(),
});
export type AppVersionView = z.output<typeof AppVersionView>;

/** A new version's code and spec: a deploy's, and a run's reloaded file's. */
const NewVersion = z.object({
  manifest: Manifest,
  env: EnvName.default("main"),
  bundleHash: Sha256,
  localSecrets: LocalSecrets,
});

/**
 * Apps: `skiff run` creates ephemeral or detached ones, `skiff deploy` versions deployed ones. A path's
 * `:app` is a name or an id, looked up in the `?env=` environment.
 */
export const appRoutes = {
  /** An ephemeral or detached app (`skiff run`); its bundle is uploaded first. */
  create: route({
    method: "POST",
    path: "/v1/apps",
    body: z.object({
      manifest: Manifest,
      env: EnvName.default("main"),
      mode: z.enum(["ephemeral", "detached"]),
      bundleHash: Sha256,
      localSecrets: LocalSecrets,
    }),
    response: z.object({ appId: z.string(), functions: z.record(z.string()) }),
  }),
  /** A new version of a deployed app; its images are built first (see imageRoutes.build). */
  deploy: route({
    method: "POST",
    path: "/v1/deploy",
    body: NewVersion,
    response: DeployedApp,
  }),
  /**
   * A new version of a running ephemeral or detached app (`skiff serve` reloading its file): its pools
   * take the new code as a deploy's do, and its URLs stay. Its bundle is uploaded first.
   */
  update: route({
    method: "POST",
    path: "/v1/apps/:id/versions",
    body: NewVersion,
    response: DeployedApp,
  }),
  list: route({ method: "GET", path: "/v1/apps", query: EnvQuery, response: z.object({ apps: z.array(AppSummary) }) }),
  get: route({ method: "GET", path: "/v1/apps/:app", query: EnvQuery, response: z.object({ app: AppSummary }) }),
  schedules: route({
    method: "GET",
    path: "/v1/apps/:app/schedules",
    query: EnvQuery,
    response: z.object({ schedules: z.array(ScheduleView) }),
  }),
  history: route({
    method: "GET",
    path: "/v1/apps/:app/history",
    query: EnvQuery,
    response: z.object({ app: AppSummary, versions: z.array(AppVersionView) }),
  }),
  /** Deploys an earlier version's code and spec again, as a new version (the one before by default). */
  rollback: route({
    method: "POST",
    path: "/v1/apps/:app/rollback",
    body: z.object({ env: EnvName.default("main"), version: z.number().int().min(1).optional() }),
    response: DeployedApp,
  }),
  /** Keeps an ephemeral app alive while its client runs. */
  heartbeat: route({ method: "POST", path: "/v1/apps/:id/heartbeat", query: EnvQuery, response: Done }),
  /** Stops an app: its containers drain and its unfinished inputs are cancelled. */
  stop: route({
    method: "POST",
    path: "/v1/apps/:app/stop",
    query: EnvQuery,
    response: Done.extend({ appId: z.string() }),
  }),
};
