/** The workspace every installation starts with: its web URLs name the environment alone. */
export const LOCAL_WORKSPACE_NAME = "local";

/** What a web function's URL names: the workspace and environment, the app and the function's label. */
export interface WebFunctionAddress {
  workspaceName: string;
  env: string;
  app: string;
  label: string;
}

/**
 * The environment part of a web URL: the environment's name in the workspace named `local`, and
 * `ENV.WORKSPACE` in any other (names have no '.', so the two never collide).
 */
export function webEnvSegment(env: string, workspaceName: string): string {
  return workspaceName === LOCAL_WORKSPACE_NAME ? env : `${env}.${workspaceName}`;
}

/**
 * The gateway path of a web function, on the server's own port: `/w/ENV/APP/LABEL` (names are letters,
 * digits, '-' and '_', so nothing needs escaping).
 * @example webPath({ workspaceName: "team", env: "dev", app: "hello", label: "gen" }) // "/w/dev.team/hello/gen"
 */
export function webPath(address: WebFunctionAddress): string {
  return `/w/${webEnvSegment(address.env, address.workspaceName)}/${address.app}/${address.label}`;
}

/**
 * The URL of a web function on a server, as the CLI prints it.
 * @example webUrl("http://127.0.0.1:7420", { workspaceName: "local", env: "main", app: "hello", label: "gen" })
 * // "http://127.0.0.1:7420/w/main/hello/gen"
 */
export function webUrl(serverUrl: string, address: WebFunctionAddress): string {
  return `${serverUrl.replace(/\/+$/, "")}${webPath(address)}`;
}
