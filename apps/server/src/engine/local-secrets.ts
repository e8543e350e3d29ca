import { type LocalSecretValues, openLocalSecrets, type SecretBox, type Store } from "@skiff/store";

export { type LocalSecretValues, sealLocalSecrets } from "@skiff/store";

/** The values a version was deployed with ({} if it has none). */
export async function readLocalSecrets(
  store: Store,
  box: SecretBox,
  appId: string,
  version: number,
): Promise<LocalSecretValues> {
  const stored = await store.apps.localSecrets(appId, version);
  return stored ? openLocalSecrets(box, appId, version, stored) : {};
}
