import type { FunctionSpec } from "@skiff/protocol";
import type { Scope, Store } from "@skiff/store";
import { ApiError } from "../errors.js";

/**
 * Refuses an app whose web labels clash: two web functions of the app with one label (BAD_REQUEST), or a
 * label another running app of the environment uses (CONFLICT, naming it). `deployedName`: the deployed app
 * this version replaces, whose labels are its own; `appId`: likewise, a run that gets a new version.
 */
export async function checkWebLabels(
  store: Store,
  scope: Scope,
  specs: FunctionSpec[],
  deployedName?: string,
  appId?: string,
): Promise<void> {
  const byLabel = new Map<string, string>();
  for (const spec of specs) {
    if (!spec.web) continue;
    const other = byLabel.get(spec.web.label);
    if (other !== undefined) {
      throw new ApiError(
        "BAD_REQUEST",
        `web functions "${other}" and "${spec.name}" both have the label "${spec.web.label}": give one another \`label\``,
      );
    }
    byLabel.set(spec.web.label, spec.name);
  }
  const clashes = await store.apps.webLabelsInUse(scope, [...byLabel.keys()], deployedName, appId);
  if (clashes.length === 0) return;
  const held = clashes.map(
    (clash) => `"${clash.label}" (${byLabel.get(clash.label)}) by ${clash.appName}.${clash.functionName}`,
  );
  const apps = [...new Set(clashes.map((clash) => clash.appId))];
  // A `skiff serve` or `skiff run` holds its labels while it runs: Ctrl-C there frees them too.
  const running = clashes.some((clash) => clash.appMode === "ephemeral")
    ? " (a `skiff serve` or `skiff run` holds them while it runs: Ctrl-C there frees them)"
    : "";
  throw new ApiError(
    "CONFLICT",
    `web labels are in use in environment "${scope.env}": ${held.join(", ")}; give those functions another \`label\`, or stop ${apps.length === 1 ? "that app" : "those apps"} first (${apps.map((id) => `\`skiff app stop ${id}\``).join(", ")})${running}`,
  );
}

/**
 * Claims of web labels, one environment at a time: the check of an app's labels and the write that makes
 * them its own run after every earlier claim in the environment has finished, so that two apps deployed at
 * once cannot both take a label (each check would pass before the other's write). Apps without a web
 * function claim nothing and do not wait. One server process holds the claims (as it holds the engine).
 */
export class LabelClaims {
  private readonly tails = new Map<string, Promise<void>>();

  /** Runs `claim` (check, then write) after any other claim in `scope`'s environment; at once for no web function. */
  async run<T>(scope: Scope, specs: FunctionSpec[], claim: () => Promise<T>): Promise<T> {
    if (!specs.some((spec) => spec.web)) return claim();
    const key = `${scope.workspace}/${scope.env}`;
    const mine = (this.tails.get(key) ?? Promise.resolve()).then(claim);
    const tail = mine.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    try {
      return await mine;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
