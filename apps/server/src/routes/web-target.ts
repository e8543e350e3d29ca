import type { IncomingMessage } from "node:http";
import { parseWebHost, parseWebPath, type WebFunctionAddress } from "@skiff/protocol";
import type { Store } from "@skiff/store";
import type { FunctionInfo } from "../engine/state.js";

/** Whether a request's path is the gateway's (`/w/...`) rather than the API's. */
export function isGatewayPath(url: string | undefined): boolean {
  return url?.startsWith("/w/") === true;
}

/** What a request's URL or host names: how to find its function, and the path its handler sees. */
export interface Target {
  /** Identifies the function's URL, for the route memory. */
  key: string;
  /** The path the handler sees, from its `/` (without the query). */
  rest: string;
  /** What the handler's paths sit under on the client's side (`x-forwarded-prefix`), "" for a host. */
  prefix: string;
  /** The running web function the URL names, from the store. */
  lookup(store: Store): Promise<{ functionId: string } | undefined>;
  /** Whether a function (remembered for the key) still answers at this URL. */
  matches(info: FunctionInfo): boolean;
  /** The names this URL has for `info`, a function that answers at it. */
  address(info: FunctionInfo): WebFunctionAddress;
  /** Whether this is the URL of the web function with these names (whatever answers there now). */
  names(url: WebFunctionAddress): boolean;
}

/** The host routing address of a request, when the server has a base domain and the host is under it. */
export function hostOf(req: IncomingMessage, webDomain: string | undefined) {
  return webDomain === undefined ? undefined : parseWebHost(req.headers.host, webDomain);
}

/** What a request names: by its `/w/...` path, else by its host name; undefined when neither names a function. */
export function targetOf(req: IncomingMessage, path: string, webDomain: string | undefined): Target | undefined {
  const address = parseWebPath(path);
  if (address) {
    return {
      key: `${address.workspaceName}/${address.env}/${address.app}/${address.label}`,
      rest: address.rest,
      prefix: address.prefix,
      lookup: (store) => store.apps.findWebFunction(address),
      matches: (info) => info.spec.web?.label === address.label,
      address: () => ({
        workspaceName: address.workspaceName,
        env: address.env,
        app: address.app,
        label: address.label,
      }),
      names: (url) =>
        url.workspaceName === address.workspaceName &&
        url.env === address.env &&
        url.app === address.app &&
        url.label === address.label,
    };
  }
  const host = hostOf(req, webDomain);
  if (!host) return undefined;
  return {
    key: `${host.workspaceName}/${host.env}//${host.labelApp}`,
    rest: path,
    prefix: "",
    lookup: (store) => store.apps.findWebFunctionByHost(host),
    matches: (info) => `${info.spec.web?.label}-${info.appName}` === host.labelApp,
    address: (info) => ({
      workspaceName: host.workspaceName,
      env: host.env,
      app: info.appName,
      label: info.spec.web?.label ?? "",
    }),
    names: (url) =>
      url.workspaceName === host.workspaceName && url.env === host.env && `${url.label}-${url.app}` === host.labelApp,
  };
}
