import type { SecretBox, Store } from "@skiff/store";

/** Values of an app version's `Secret.fromObject` / `fromDotenv` secrets, by secret id. */
export type LocalSecretValues = Record<string, Record<string, string>>;

/** What a version's sealed values are bound to: they open only for that app and version. */
function aad(appId: string, version: number): string {
  return `apps/${appId}/v${version}/local-secrets`;
}

/** Seals `values` for the version the store is about to write (see Store.deployApp's sealSecrets). */
export function sealLocalSecrets(box: SecretBox, values: LocalSecretValues) {
  const plaintext = new TextEncoder().encode(JSON.stringify(values));
  return (appId: string, version: number): Uint8Array => box.seal(plaintext, aad(appId, version));
}

/** The values a version was deployed with ({} if it has none). */
export async function readLocalSecrets(
  store: Store,
  box: SecretBox,
  appId: string,
  version: number,
): Promise<LocalSecretValues> {
  const sealed = await store.localSecrets(appId, version);
  return sealed
    ? (JSON.parse(new TextDecoder().decode(box.open(sealed, aad(appId, version)))) as LocalSecretValues)
    : {};
}
