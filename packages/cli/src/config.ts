import { homedir } from "node:os";
import { join } from "node:path";
import { parseSize } from "@skiff/protocol/units";
import { z } from "zod";
import { BlobUrl } from "./blob-url.js";

const Env = z.object({
  SKIFF_HOME: z.string().default(join(homedir(), ".skiff")),
  SKIFF_CACHE_DIR: z.string().optional(),
  SKIFF_SERVER_URL: z.string().url().optional(),
  SKIFF_DATABASE_URL: z.string().optional(),
  /** Where the server keeps blobs (`s3://BUCKET/PREFIX?…` or `file:///path`); default: SKIFF_HOME/blobs. */
  SKIFF_BLOB_URL: BlobUrl.optional(),
  /** The key secrets are sealed with (64 hex or base64); default: a key file under SKIFF_HOME. */
  SKIFF_MASTER_KEY: z.string().optional(),
  /** What `skiff worker` joins with (`ID:SECRET`); default: the token file a server on this SKIFF_HOME made. */
  SKIFF_WORKER_TOKEN: z.string().optional(),
  SKIFF_RUNTIME: z.enum(["auto", "gvisor", "runc", "process"]).default("auto"),
  SKIFF_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /**
   * The server's base URL for host routing (`https://apps.example.com`): web functions answer at
   * `LABEL-APP.ENV.apps.example.com` too, once DNS sends `*.apps.example.com` to the server.
   */
  SKIFF_WEB_URL: z
    .string()
    .url()
    .refine((value) => /^https?:$/.test(new URL(value).protocol) && new URL(value).pathname === "/", {
      message: "use an http(s) URL with no path, such as https://apps.example.com",
    })
    .optional(),
  /** Host TCP ports containers may connect to, comma-separated (tests use it for a host-side helper). */
  SKIFF_ALLOW_HOST_PORTS: z
    .string()
    .default("")
    .transform((value) =>
      value
        .split(",")
        .map((part) => part.trim())
        .filter(Boolean)
        .map(Number),
    )
    .refine(
      (ports) => ports.every((port) => Number.isInteger(port) && port > 0 && port < 65_536),
      "use TCP ports, comma-separated",
    ),
  SKIFF_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info"),
  /**
   * The most a workspace's volumes may hold (their latest versions' files): MiB, or a size such as "500GiB";
   * "unlimited" turns it off. A commit past it fails and changes nothing.
   */
  SKIFF_VOLUME_QUOTA: z
    .string()
    .default("100GiB")
    .transform((value, ctx) => {
      if (value === "unlimited") return Number.POSITIVE_INFINITY;
      try {
        return parseSize(/^\d+(\.\d+)?$/.test(value) ? Number(value) : value, "SKIFF_VOLUME_QUOTA") * 1024 * 1024;
      } catch (error) {
        ctx.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
  /**
   * How many recently used (image, cpu, memory) a worker keeps a spare runner booted for (0: none): a cold start
   * that finds one only loads its code.
   */
  SKIFF_SPARE_RUNNERS: z.coerce.number().int().min(0).max(16).default(2),
  /** Disk budget of a worker's cached image layers, in MiB. */
  SKIFF_IMAGE_CACHE_MIB: z.coerce
    .number()
    .int()
    .positive()
    .default(20 * 1024),
});

export type Config = z.infer<typeof Env> & { cacheDir: string };

/** The skiff command's configuration (user and host commands alike), read once from the environment. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`environment variable ${issue.path.join(".")} is invalid: ${issue.message}`);
  }
  return { ...parsed.data, cacheDir: parsed.data.SKIFF_CACHE_DIR ?? join(parsed.data.SKIFF_HOME, "cache") };
}
