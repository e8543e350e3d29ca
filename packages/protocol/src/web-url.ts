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

/**
 * Whether a function's names can make its host name (`LABEL-APP.ENV.DOMAIN`): lower-case letters, digits
 * and '-' (a host name has no case), with `LABEL-APP` at most 63 characters, as DNS allows. Others are
 * reached by their `/w/...` path only.
 */
export function hostRoutable(address: Pick<WebFunctionAddress, "app" | "label" | "env" | "workspaceName">): boolean {
  const first = `${address.label}-${address.app}`;
  return (
    first.length <= 63 &&
    /^[a-z0-9-]+$/.test(address.app) &&
    /^[a-z0-9-]+$/.test(address.env) &&
    /^[a-z0-9-]+$/.test(address.workspaceName)
  );
}

/**
 * The host name of a web function under a base domain: `LABEL-APP.ENV.DOMAIN`, with `ENV` as in paths
 * (`ENV.WORKSPACE` outside the workspace named `local`), lower case.
 * @example webHost({ workspaceName: "local", env: "main", app: "hello", label: "gen" }, "apps.example.com")
 * // "gen-hello.main.apps.example.com"
 */
export function webHost(address: WebFunctionAddress, domain: string): string {
  return `${address.label}-${address.app}.${webEnvSegment(address.env, address.workspaceName)}.${domain}`.toLowerCase();
}

/**
 * The URL of a web function by host routing, under a base URL (`https://apps.example.com`, or with a port):
 * the function's host name in front of the base's host, same scheme and port.
 * @example webHostUrl("http://apps.example.com:7420", { workspaceName: "local", env: "main", app: "hello", label: "gen" })
 * // "http://gen-hello.main.apps.example.com:7420"
 */
export function webHostUrl(base: string, address: WebFunctionAddress): string {
  const url = new URL(base);
  return `${url.protocol}//${webHost(address, url.hostname)}${url.port ? `:${url.port}` : ""}`;
}

/** What a host name `LABEL-APP.ENV.DOMAIN` names: the environment, and `LABEL-APP` (a '-' of either may be the split). */
export interface WebHostAddress {
  workspaceName: string;
  env: string;
  labelApp: string;
}

/**
 * The parts of a request's `Host` (port ignored, any case) under the base domain, or undefined when it is
 * not a web function's host name there.
 */
export function parseWebHost(host: string | undefined, domain: string): WebHostAddress | undefined {
  if (!host) return undefined;
  const name = host.replace(/:\d+$/, "").replace(/\.$/, "").toLowerCase();
  const suffix = `.${domain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const parts = name.slice(0, -suffix.length).split(".");
  if (parts.length !== 2 && parts.length !== 3) return undefined;
  const [labelApp, env, workspace] = parts as [string, string, string | undefined];
  if (!labelApp.includes("-") || !env || workspace === "") return undefined;
  return { workspaceName: workspace ?? LOCAL_WORKSPACE_NAME, env, labelApp };
}
