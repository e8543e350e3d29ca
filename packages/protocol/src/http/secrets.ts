import { z } from "zod";
import { route } from "./route.js";
import { Done, EnvQuery, Instant } from "./wire.js";

/** Local secret values sent beside a manifest, by the local secret's id. */
export const LocalSecrets = z.record(z.record(z.string())).default({});
export type LocalSecrets = z.output<typeof LocalSecrets>;

/** A secret as listed: its keys, never its values. */
export const SecretSummary = z.object({
  name: z.string(),
  keys: z.array(z.string()),
  createdAt: Instant,
  updatedAt: Instant,
});
export type SecretSummary = z.output<typeof SecretSummary>;

/** An environment of a workspace. */
export const EnvironmentView = z.object({ name: z.string(), createdAt: Instant });
export type EnvironmentView = z.output<typeof EnvironmentView>;

const Name = z.string().min(1);

/** Named secrets of an environment, and the master key they are sealed with. Values go in and never come back out. */
export const secretRoutes = {
  list: route({
    method: "GET",
    path: "/v1/secrets",
    query: EnvQuery,
    response: z.object({ secrets: z.array(SecretSummary) }),
  }),
  create: route({
    method: "POST",
    path: "/v1/secrets",
    body: z.object({
      env: Name.default("main"),
      name: Name,
      values: z.record(z.string()),
      overwrite: z.boolean().default(false),
    }),
    response: z.object({ secret: SecretSummary }),
  }),
  delete: route({ method: "DELETE", path: "/v1/secrets/:name", query: EnvQuery, response: Done }),
  /** A new master key (admin): everything sealed with the old one is sealed again. */
  rotateKey: route({
    method: "POST",
    path: "/v1/admin/rotate-key",
    response: z.object({ keyId: z.string(), secrets: z.number(), localSecrets: z.number(), skipped: z.number() }),
  }),
};

/** A workspace's environments. */
export const environmentRoutes = {
  list: route({
    method: "GET",
    path: "/v1/environments",
    response: z.object({ environments: z.array(EnvironmentView) }),
  }),
  create: route({ method: "POST", path: "/v1/environments", body: z.object({ name: Name }), response: Done }),
  delete: route({ method: "DELETE", path: "/v1/environments/:name", response: Done }),
};
