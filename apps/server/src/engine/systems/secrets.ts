import {
  BUCKET_SECRET_KEYS,
  type BucketCredentials,
  buildSecretsOf,
  type ImageSecrets,
  type ImageSpec,
  REGISTRY_LOGIN_KEYS,
  registrySecretOf,
} from "@skiff/protocol";
import { type LocalSecretValues, openLocalSecrets, type Scope, type SecretBox, type Store } from "@skiff/store";
import { ApiError } from "../../errors.js";
import type { EngineState, FunctionInfo } from "../state.js";

/** Secret resolution: a container's environment from its function's secrets, and what an image build needs. */
export class SecretSystem {
  constructor(private readonly state: EngineState) {}

  /**
   * The environment variables of a function's secrets, in its order (later ones win): named secrets as
   * they are now in the app's environment, local ones as sealed with the app version.
   */
  async secretsFor(info: FunctionInfo): Promise<Record<string, string>> {
    const { secrets, store } = this.state;
    const refs = info.spec.secrets ?? [];
    if (refs.length === 0) return {};
    if (!secrets) throw new Error("this server has no secret store");
    const names = refs.flatMap((ref) => ("name" in ref ? [ref.name] : []));
    const named = names.length > 0 ? await secrets.store.getMany(info.env, names, info.workspace) : new Map();
    const local = refs.some((ref) => "local" in ref)
      ? await readLocalSecrets(store, secrets.store.box, info.appId, info.version)
      : {};
    const out: Record<string, string> = {};
    for (const ref of refs) {
      const values = "name" in ref ? named.get(ref.name) : local[ref.local];
      if (!values) {
        throw new Error(
          "name" in ref
            ? `the secret "${ref.name}" is not in environment "${info.env}" any more: create it again (skiff secret create ${ref.name} KEY=value --env ${info.env})`
            : "the app version's local secret values are missing: deploy it again",
        );
      }
      Object.assign(out, values);
    }
    return out;
  }

  /**
   * The credentials of a function's bucket mounts, by the name of the secret each comes from (as it is now
   * in the app's environment); {} when none names a secret.
   */
  async bucketCredentialsFor(info: FunctionInfo): Promise<Record<string, BucketCredentials>> {
    const names = [
      ...new Set((info.spec.volumes ?? []).flatMap((m) => (m.kind === "bucket" && m.secret ? [m.secret] : []))),
    ];
    if (names.length === 0) return {};
    if (!this.state.secrets) throw new Error("this server has no secret store");
    const found = await this.state.secrets.store.getMany(info.env, names, info.workspace);
    const out: Record<string, BucketCredentials> = {};
    for (const name of names) {
      const values = found.get(name);
      const missing = BUCKET_SECRET_KEYS.filter((key) => !values?.[key]);
      if (!values || missing.length > 0) {
        throw new Error(
          `the bucket secret "${name}" in environment "${info.env}" ${values ? `has no ${missing.join(", ")}` : "is not there any more"}: \`skiff secret create ${name} AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… --force --env ${info.env}\``,
        );
      }
      out[name] = {
        accessKeyId: values.AWS_ACCESS_KEY_ID!,
        secretAccessKey: values.AWS_SECRET_ACCESS_KEY!,
        ...(values.AWS_SESSION_TOKEN ? { sessionToken: values.AWS_SESSION_TOKEN } : {}),
      };
    }
    return out;
  }

  /**
   * The secrets building `image` needs, from `scope`: the login of the registry its base comes from, and
   * the values of the secrets its steps run with. Empty for an image that names none.
   */
  async imageSecrets(scope: Scope, image: ImageSpec): Promise<ImageSecrets> {
    const registry = registrySecretOf(image);
    const steps = buildSecretsOf(image);
    const names = [...new Set([...(registry ? [registry] : []), ...steps])];
    if (names.length === 0) return {};
    if (!this.state.secrets) throw new ApiError("UNAVAILABLE", "this server has no secret store");
    const found = await this.state.secrets.store.getMany(scope.env, names, scope.workspace);
    const out: ImageSecrets = {};
    if (registry) {
      const values = found.get(registry) ?? {};
      const missing = REGISTRY_LOGIN_KEYS.filter((key) => !values[key]);
      if (missing.length > 0) throw new ApiError("BAD_REQUEST", registryLoginMissing(registry, scope.env, missing));
      out.registryAuth = { username: values.REGISTRY_USERNAME!, password: values.REGISTRY_PASSWORD! };
    }
    const absent = steps.find((name) => !found.has(name));
    if (absent) throw new ApiError("BAD_REQUEST", buildSecretMissing(absent, scope.env));
    if (steps.length > 0) out.buildSecrets = Object.fromEntries(steps.map((name) => [name, found.get(name)!]));
    return out;
  }
}

/** The local secret values an app version was deployed with ({} if it has none). */
export async function readLocalSecrets(
  store: Store,
  box: SecretBox,
  appId: string,
  version: number,
): Promise<LocalSecretValues> {
  const stored = await store.apps.localSecrets(appId, version);
  return stored ? openLocalSecrets(box, appId, version, stored) : {};
}

/** What a step's secret that is not in the environment is refused with (at deploy, and at build). */
export function buildSecretMissing(name: string, env: string): string {
  return `an image step runs with the secret "${name}", which is not in environment "${env}": create it with \`skiff secret create ${name} KEY=value --env ${env}\``;
}

/** What a registry secret without its login keys is refused with (at deploy, and when the image is pulled). */
export function registryLoginMissing(name: string, env: string, missing: readonly string[]): string {
  return `the registry secret "${name}" in environment "${env}" needs ${REGISTRY_LOGIN_KEYS.join(" and ")} (missing: ${missing.join(", ")}): \`skiff secret create ${name} REGISTRY_USERNAME=… REGISTRY_PASSWORD=… --force --env ${env}\``;
}
