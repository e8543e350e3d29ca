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

/** What a gateway path `/w/ENV/APP/LABEL/REST` names, with the part the handler sees. */
export interface WebAddress extends WebFunctionAddress {
  /** The path the handler sees, from its `/` (without the query). */
  rest: string;
  /** `/w/ENV/APP/LABEL`: what the handler's paths sit under, for `x-forwarded-prefix`. */
  prefix: string;
}

/** The parts of a gateway path (`/w/...`, no query), or undefined when it does not name a web function. */
export function parseWebPath(path: string): WebAddress | undefined {
  const match = /^\/w\/([^/]+)\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path);
  if (!match) return undefined;
  const [, envPart, app, label, rest] = match as unknown as [string, string, string, string, string | undefined];
  const dot = envPart.indexOf(".");
  const env = dot < 0 ? envPart : envPart.slice(0, dot);
  const workspaceName = dot < 0 ? LOCAL_WORKSPACE_NAME : envPart.slice(dot + 1);
  if (!env || !workspaceName || workspaceName.includes(".")) return undefined;
  return { workspaceName, env, app, label, rest: rest ?? "/", prefix: `/w/${envPart}/${app}/${label}` };
}
