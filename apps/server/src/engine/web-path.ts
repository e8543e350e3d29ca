/** The workspace whose environments appear in web URLs by their name alone. */
const PLAIN_WORKSPACE = "local";

/** What a gateway URL `/w/ENV/APP/LABEL/REST` names; ENV is `ENV` in workspace `local`, `ENV.WORKSPACE` elsewhere. */
export interface WebAddress {
  workspaceName: string;
  env: string;
  app: string;
  label: string;
  /** The path the handler sees, from its `/` (without the query). */
  rest: string;
  /** `/w/ENV/APP/LABEL`: what the handler's paths sit under, for `x-forwarded-prefix`. */
  prefix: string;
}

/** The gateway path of a web function: `/w/ENV/APP/LABEL` (ENV is `ENV.WORKSPACE` outside workspace `local`). */
export function webPath(where: { workspaceName: string; env: string; app: string; label: string }): string {
  const env = where.workspaceName === PLAIN_WORKSPACE ? where.env : `${where.env}.${where.workspaceName}`;
  return `/w/${env}/${where.app}/${where.label}`;
}

/** The parts of a gateway path (`/w/...`, no query), or undefined when it does not name a web function. */
export function parseWebPath(path: string): WebAddress | undefined {
  const match = /^\/w\/([^/]+)\/([^/]+)\/([^/]+)(\/.*)?$/.exec(path);
  if (!match) return undefined;
  const [, envPart, app, label, rest] = match as unknown as [string, string, string, string, string | undefined];
  const dot = envPart.indexOf(".");
  const env = dot < 0 ? envPart : envPart.slice(0, dot);
  const workspaceName = dot < 0 ? PLAIN_WORKSPACE : envPart.slice(dot + 1);
  if (!env || !workspaceName || workspaceName.includes(".")) return undefined;
  return { workspaceName, env, app, label, rest: rest ?? "/", prefix: `/w/${envPart}/${app}/${label}` };
}
