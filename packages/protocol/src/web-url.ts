/** The name of the workspace a new installation starts with: its URLs name only the environment. */
export const LOCAL_WORKSPACE_NAME = "local";

/** Where a web function is reached: the server, and the environment, workspace, app and label it answers for. */
export interface WebAddress {
  serverUrl: string;
  env: string;
  workspace: string;
  app: string;
  label: string;
}

/**
 * The environment part of a web URL: the environment's name in the workspace named `local`, and
 * `ENV.WORKSPACE` in any other (names have no '.', so the two never collide).
 */
export function webEnvSegment(env: string, workspace: string): string {
  return workspace === LOCAL_WORKSPACE_NAME ? env : `${env}.${workspace}`;
}

/**
 * The URL of a web function, on the server's own port (no DNS needed): `SERVER/w/ENV/APP/LABEL`.
 * @example webUrl({ serverUrl: "http://127.0.0.1:7420", env: "main", workspace: "local", app: "hello", label: "gen" })
 * // "http://127.0.0.1:7420/w/main/hello/gen"
 */
export function webUrl(address: WebAddress): string {
  const base = address.serverUrl.replace(/\/+$/, "");
  const segments = [webEnvSegment(address.env, address.workspace), address.app, address.label];
  return `${base}/w/${segments.map(encodeURIComponent).join("/")}`;
}
