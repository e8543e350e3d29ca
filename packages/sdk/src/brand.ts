/**
 * Objects are recognized by a brand, not instanceof: the CLI, the runner and the user's bundle each load
 * their own copy of the SDK.
 */
export const BRAND = Symbol.for("skiff.kind");

export type Kind = "app" | "function" | "class" | "entrypoint";

export function kindOf(value: unknown): Kind | undefined {
  if ((typeof value !== "object" && typeof value !== "function") || value === null) return undefined;
  return (value as { [BRAND]?: Kind })[BRAND];
}
