import { z } from "zod";
import { BatchOptions } from "./batch-options.js";
import { ENV_VAR_NAME, IMAGE_USER, RESOURCE_NAME, WEB_LABEL } from "./constants.js";
import { mountsProblem } from "./mount-rules.js";
import { MountSpec } from "./mounts.js";
import { MIN_MEMORY_MIB, optionsProblem } from "./options.js";
import { snapshotProblem } from "./snapshot-rules.js";

/** How user exceptions are retried. Infrastructure failures have their own budget (INFRA_RETRIES). */
export const RetryPolicy = z.object({
  maxRetries: z.number().int().min(0).max(100),
  initialDelayMs: z.number().int().min(0),
  backoffCoefficient: z.number().min(1),
  maxDelayMs: z.number().int().min(0),
});
export type RetryPolicy = z.infer<typeof RetryPolicy>;

/**
 * Named secrets a step that runs commands gets as environment variables while it runs (a private
 * registry's token, say): never stored in the layer. Their names are part of the layer's key, their
 * values are not.
 */
const BuildSecrets = z.array(z.string().regex(RESOURCE_NAME)).min(1).optional();

/**
 * Volumes of the app's environment a `run` step mounts read-write while its commands run (a download
 * cache, say): not part of the layer. What the step wrote there is committed when it succeeds. Their
 * names and paths are part of the layer's key, their contents are not.
 */
const BuildVolumes = z
  .array(
    z
      .object({
        path: z.string().startsWith("/"),
        name: z.string().regex(RESOURCE_NAME),
        /** Made (at deploy or build) when it is not there. */
        createIfMissing: z.boolean().default(false),
      })
      .strict(),
  )
  .min(1)
  .superRefine((volumes, ctx) => {
    const problem = mountsProblem(volumes.map((volume) => ({ kind: "volume" as const, ...volume })));
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
  })
  .optional();
export type BuildVolume = NonNullable<z.infer<typeof BuildVolumes>>[number];

/** One builder call of an image: one layer. */
export const ImageStep = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("apt"), packages: z.array(z.string().min(1)).min(1), secrets: BuildSecrets }),
  z.object({ kind: z.literal("npm"), packages: z.array(z.string().min(1)).min(1), secrets: BuildSecrets }),
  z.object({
    kind: z.literal("run"),
    commands: z.array(z.string().min(1)).min(1),
    secrets: BuildSecrets,
    volumes: BuildVolumes,
  }),
  z.object({ kind: z.literal("env"), vars: z.record(z.string()) }),
  z.object({ kind: z.literal("workdir"), path: z.string().startsWith("/") }),
  /** Later steps and the function run as this user (a name from the image's /etc/passwd, or uid[:gid]). */
  z.object({ kind: z.literal("user"), user: z.string().regex(IMAGE_USER) }),
  /** Files from the caller's machine: a tar in the blob store, unpacked at the root of the layer. */
  z.object({
    kind: z.literal("copy"),
    archive: z.string().regex(/^[0-9a-f]{64}$/),
    target: z.string().startsWith("/"),
  }),
]);
export type ImageStep = z.infer<typeof ImageStep>;

/**
 * An image as the worker needs it: the Debian base, the Node major mounted into it, and the layers on
 * top, each with the key that names it (a hash of its parent's key and its own step).
 */
export const ImageSpec = z.object({
  /**
   * The Debian base Skiff builds, or an image pulled from a registry (`insecure`: plain HTTP; `secret`:
   * the named secret whose REGISTRY_USERNAME and REGISTRY_PASSWORD log in to it).
   */
  base: z.union([
    z.literal("debian-bookworm"),
    z.object({
      registry: z.string().min(1),
      insecure: z.boolean().default(false),
      secret: z.string().optional(),
    }),
  ]),
  nodeMajor: z.number().int().min(18),
  layers: z.array(z.object({ key: z.string().regex(/^[0-9a-f]{64}$/), step: ImageStep })).default([]),
  /** Files from the caller's machine mounted read-only when a container starts: no layer, no rebuild. */
  mounts: z
    .array(z.object({ archive: z.string().regex(/^[0-9a-f]{64}$/), target: z.string().startsWith("/") }))
    .default([]),
});
export type ImageSpec = z.infer<typeof ImageSpec>;

/** A class's shape: what the runner calls and the values that pick a container pool. */
export const ClassShape = z.object({
  /** Methods callable remotely (`@method()`). */
  methods: z.array(z.string().min(1)).min(1),
  /** `@parameter()` fields and the type of their default values; each distinct set gets its own pool. */
  parameters: z.array(z.object({ name: z.string().min(1), type: z.enum(["string", "number", "boolean"]) })),
  /** The methods that are async generators: called with `.remoteGen`, not `.remote`. */
  generators: z.array(z.string().min(1)).optional(),
  /** `@enter({ snap: true })` hooks: they run before the container's memory snapshot is taken. */
  snapEnter: z.array(z.string().min(1)).optional(),
});
export type ClassShape = z.infer<typeof ClassShape>;

/**
 * When a deployed function runs by itself: a cron expression in a timezone (IANA name), or every
 * `periodMs` from when the schedule was first deployed.
 */
export const Schedule = z.union([
  z.object({ cron: z.string().min(1), timezone: z.string().min(1).default("UTC") }),
  z.object({ periodMs: z.number().int().min(1000) }),
]);
export type Schedule = z.infer<typeof Schedule>;

/**
 * A secret a function's containers get as environment variables: one stored by name in the app's
 * environment (with the keys it must have), or values from the caller's machine (`Secret.fromObject`,
 * `Secret.fromDotenv`) sent beside the manifest and sealed with the app version, never in the spec.
 */
export const SecretRef = z.union([
  z.object({ name: z.string().min(1), requiredKeys: z.array(z.string().regex(ENV_VAR_NAME)).default([]) }),
  z.object({ local: z.string().regex(/^ls-[0-9a-f-]{36}$/) }),
]);
export type SecretRef = z.infer<typeof SecretRef>;

/** The HTTP methods an endpoint may answer. */
export const HttpMethodName = z.enum(["GET", "POST", "PUT", "PATCH", "DELETE"]);

/**
 * How a function answers HTTP: `fetch`, a Request => Response handler (`app.web`); `endpoint`, a typed JSON
 * handler with validation and OpenAPI docs (`app.endpoint`); `server`, a server the user's code starts on
 * a port inside the container (`app.webServer`). Its requests reach it at `/w/ENV/APP/LABEL/...`.
 */
export const WebSpec = z
  .object({
    kind: z.enum(["fetch", "endpoint", "server"]),
    label: z.string().regex(WEB_LABEL, "web labels use lowercase letters, digits and '-' (at most 63)"),
    /** `endpoint`: the one method it answers. */
    method: HttpMethodName.optional(),
    /** `endpoint`: serve `/docs` and `/openapi.json`. */
    docs: z.boolean().default(false),
    /** Requests must carry a proxy token's `Skiff-Key` and `Skiff-Secret` headers. */
    requiresProxyAuth: z.boolean().default(false),
    /** `server`: the port the user's server listens on inside the container. */
    port: z.number().int().min(1).max(65_535).optional(),
    /**
     * How long a request runs before its client is sent (303) to a URL its answer will be at; absent: the
     * default (DEFAULT_REDIRECT_AFTER_MS); null: never (it runs to the function's timeout).
     */
    redirectAfterMs: z
      .number()
      .int()
      .positive()
      .max(24 * 3600_000, "redirectAfter is at most 24h")
      .nullable()
      .optional(),
  })
  .strict();
export type WebSpec = z.infer<typeof WebSpec>;

/** How long a web request runs before its client is sent to its result URL, unless its function says otherwise. */
export const DEFAULT_REDIRECT_AFTER_MS = 150_000;

/**
 * One function as deployed: everything the server and worker need, normalized (ms, MiB). Strict: a key
 * it does not know (an option not implemented yet, a typo) is refused, never dropped.
 */
export const FunctionSpec = z
  .object({
    name: z.string().min(1),
    kind: z.enum(["function", "class"]),
    /** For a class: its methods and parameters. */
    cls: ClassShape.optional(),
    timeoutMs: z.number().int().positive(),
    /** How long a new container may take to become ready (load the code, run `enter` hooks). */
    startupTimeoutMs: z.number().int().positive().default(300_000),
    retries: RetryPolicy,
    cpu: z.number().positive(),
    memoryMiB: z
      .number()
      .min(MIN_MEMORY_MIB, `memory must be at least ${MIN_MEMORY_MIB} MiB: Node needs that much to start`),
    image: ImageSpec,
    minContainers: z.number().int().min(0),
    maxContainers: z.number().int().min(1),
    bufferContainers: z.number().int().min(0),
    scaledownWindowMs: z.number().int().min(0),
    /** Inputs one container runs at once. */
    maxInputs: z.number().int().min(1),
    /** Inputs per container the autoscaler aims for (at most maxInputs). */
    targetInputs: z.number().int().min(1).optional(),
    /** Single calls gathered into one call of the handler with a list: at most this many, waiting this long. */
    batched: BatchOptions.optional(),
    schedule: Schedule.optional(),
    /** In order: a later secret's keys override an earlier one's. */
    secrets: z.array(SecretRef).default([]),
    /** Answers HTTP requests instead of calls (see WebSpec). */
    web: WebSpec.optional(),
    /** An `async function*`: its values stream to the caller (`.remoteGen`); `.remote`, `.map` and `.spawn` are refused. */
    generator: z.boolean().optional(),
    /** Volumes and buckets mounted into its containers, by path (see mountsProblem for the paths refused). */
    volumes: z.array(MountSpec).default([]),
    /**
     * Start containers from a memory snapshot taken once the code has loaded (and a class's `snap: true`
     * `enter` hooks have run), instead of booting each.
     */
    memorySnapshot: z.boolean().optional(),
  })
  .strict();
export type FunctionSpec = z.infer<typeof FunctionSpec>;

export const AppManifest = z
  .object({
    name: z.string().regex(RESOURCE_NAME, "app names use letters, digits, '-' and '_'"),
    functions: z.array(FunctionSpec),
  })
  .superRefine((manifest, context) => {
    for (const [index, fn] of manifest.functions.entries()) {
      const problem = snapshotProblem(fn);
      if (problem) context.addIssue({ code: "custom", path: ["functions", index, "memorySnapshot"], message: problem });
    }
  });
export type AppManifest = z.infer<typeof AppManifest>;

/**
 * What `withOptions` may change of a function's spec: its variant runs in a pool of its own. Named
 * secrets only (local values travel with an app version, not with a call).
 */
export const SpecOverrides = z
  .object({
    timeoutMs: z.number().int().positive(),
    startupTimeoutMs: z.number().int().positive(),
    retries: RetryPolicy,
    cpu: z.number().positive(),
    memoryMiB: z
      .number()
      .min(MIN_MEMORY_MIB, `memory must be at least ${MIN_MEMORY_MIB} MiB: Node needs that much to start`),
    minContainers: z.number().int().min(0),
    maxContainers: z.number().int().min(1),
    bufferContainers: z.number().int().min(0),
    scaledownWindowMs: z.number().int().min(0),
    maxInputs: z.number().int().min(1).max(1000),
    targetInputs: z.number().int().min(1),
    batched: BatchOptions.strict(),
    secrets: z.array(
      z.object({ name: z.string().min(1), requiredKeys: z.array(z.string().regex(ENV_VAR_NAME)).default([]) }),
    ),
  })
  .partial()
  .strict();
export type SpecOverrides = z.infer<typeof SpecOverrides>;

/**
 * The first problem of a manifest that does not parse, worded for its author: the function and the
 * option (`function "resize": option "gpu" is not supported yet`), not the path of the field.
 */
export function manifestProblem(manifest: unknown): string | undefined {
  const parsed = AppManifest.safeParse(manifest);
  if (parsed.success) return undefined;
  // An option it does not know explains the rest (a key spelled wrong is also a key missing): it goes first.
  const { issues } = parsed.error;
  const issue = issues.find((i) => i.code === "unrecognized_keys") ?? issues[0]!;
  const [top, index, ...rest] = issue.path;
  if (top !== "functions" || typeof index !== "number") {
    return `manifest${issue.path.length > 0 ? ` ${issue.path.join(".")}` : ""}: ${issue.message}`;
  }
  const fn = (manifest as { functions: { name?: unknown; kind?: unknown }[] }).functions[index];
  const where = `${fn?.kind === "class" ? "class" : "function"} ${typeof fn?.name === "string" ? `"${fn.name}"` : `#${index + 1}`}`;
  if (issue.code === "unrecognized_keys" && rest.length === 0) {
    return optionsProblem(
      where,
      Object.fromEntries(issue.keys.map((key) => [key, true])),
      Object.keys(FunctionSpec.shape),
    )!;
  }
  return `${where}: option "${rest.join(".")}": ${issue.message}`;
}
