import type { AppManifest } from "@skiff/protocol";
import { tokenRoutes } from "@skiff/protocol/http";
import { hostRoutable, LOCAL_WORKSPACE_NAME, webHostUrl, webUrl } from "@skiff/protocol/web-url";
import type { Client } from "skiff/plumbing";
import { say } from "./output.js";

/** A web function's label and the URL its requests reach it at. */
export interface WebUrl {
  label: string;
  url: string;
}

/** Whether any function of the manifest answers HTTP (`app.web`, `app.endpoint`, `app.webServer`). */
export function hasWebFunction(manifest: AppManifest): boolean {
  return manifest.functions.some((fn) => fn.web !== undefined);
}

/**
 * The URL of each web function of an app, in its manifest's order. The workspace (part of the
 * URL outside the workspace named `local`) is the one the CLI's token acts in. On a server with host
 * routing (SKIFF_WEB_URL) a function whose names fit in a host name gets its host URL; others, and every
 * function on a server without it, their `/w/...` path on the server.
 */
export async function webUrlsOf(
  manifest: AppManifest,
  where: { client: Client; serverUrl: string; env: string },
): Promise<WebUrl[]> {
  const labels = manifest.functions.flatMap((fn) => (fn.web ? [fn.web.label] : []));
  if (labels.length === 0) return [];
  return labeledUrls(await webUrlContext(where.client), [{ app: manifest.name, labels }], where)[0] ?? [];
}

/** What a web URL needs from the server: the token's workspace's name, and host routing's base URL if set. */
export interface WebUrlContext {
  workspaceName: string;
  webBaseUrl?: string | undefined;
}

/** Asks the server (whoami) what web URLs need. */
export async function webUrlContext(client: Client): Promise<WebUrlContext> {
  const me = await client.call(tokenRoutes.whoami);
  return { workspaceName: me.workspace?.name ?? LOCAL_WORKSPACE_NAME, webBaseUrl: me.webBaseUrl ?? undefined };
}

/** The URLs of the labelled web functions of some apps of an environment, app by app. */
export function labeledUrls(
  context: WebUrlContext,
  apps: { app: string; labels: string[] }[],
  where: { serverUrl: string; env: string },
): WebUrl[][] {
  return apps.map(({ app, labels }) =>
    labels.map((label) => {
      const address = { workspaceName: context.workspaceName, env: where.env, app, label };
      const url =
        context.webBaseUrl && hostRoutable(address)
          ? webHostUrl(context.webBaseUrl, address)
          : webUrl(where.serverUrl, address);
      return { label, url };
    }),
  );
}

/** One line per web function: its label, then its URL, labels padded to line the URLs up. */
export function formatWebUrls(urls: WebUrl[]): string[] {
  const width = Math.max(0, ...urls.map((u) => u.label.length));
  return urls.map((u) => `  ${u.label.padEnd(width)}  ${u.url}`);
}

/** Prints the URLs of an app's web functions, if it has any. */
export async function printWebUrls(
  manifest: AppManifest,
  where: { client: Client; serverUrl: string; env: string },
): Promise<void> {
  for (const line of formatWebUrls(await webUrlsOf(manifest, where))) say(line);
}
