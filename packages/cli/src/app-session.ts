import { setTimeout as sleep } from "node:timers/promises";
import type { AppManifest } from "@skiff/protocol";
import { appRoutes, healthRoute } from "@skiff/protocol/http";
import { type Client, type CollectedApp, localSecretsOf, uploadImageFiles } from "skiff/plumbing";
import type { Bundle } from "./bundle.js";
import type { Config } from "./config.js";
import { dim, printLogs, say } from "./output.js";
import { connectServer } from "./server-client.js";

/**
 * An app this CLI created for as long as it runs (`skiff run`, `skiff serve`): its bundle uploaded, its logs
 * streamed to this terminal, and heartbeats that keep it alive. An ephemeral app is stopped by `stop`, or by
 * the server once the heartbeats stop; a detached one keeps running.
 */
export class AppSession {
  private lastLogAt = 0;
  /** Arrival times and sizes of the last batches of log lines, to tell a chatty end from a quiet one. */
  private readonly recentBatches: { at: number; lines: number }[] = [];
  private logsEnded = () => {};
  /** Resolves once the server says the app has stopped (here or elsewhere) and its last log lines were sent. */
  readonly stopped = new Promise<void>((resolve) => (this.logsEnded = resolve));
  private heartbeat: NodeJS.Timeout | undefined;

  private constructor(
    readonly client: Client,
    readonly serverUrl: string,
    /** `ID:SECRET`, if there is one. */
    readonly token: string | undefined,
    readonly env: string,
    readonly appId: string,
    /** Each function's id, by name (of the version that runs now). */
    public functionIds: Record<string, string>,
    readonly mode: "ephemeral" | "detached",
  ) {}

  /** Uploads the bundle and images' files, creates the app, and starts following its logs and heartbeats. */
  static async open(options: {
    bundle: Bundle;
    manifest: AppManifest;
    collected: CollectedApp;
    mode: "ephemeral" | "detached";
    config: Config;
    /** The environment (`--env`); default: SKIFF_ENV, the profile's, else main. */
    env?: string | undefined;
  }): Promise<AppSession> {
    const { bundle, manifest, collected, mode } = options;
    const { client, serverUrl, token, env } = await connectServer(options.config, options.env);
    await client.putBlob(bundle.code);
    await uploadImageFiles(client, ...manifest.functions.map((fn) => fn.image));
    const created = await client.call(appRoutes.create, {
      body: { manifest, env, mode, bundleHash: bundle.hash, localSecrets: localSecretsOf(collected) },
    });
    const session = new AppSession(client, serverUrl, token, env, created.appId, created.functions, mode);
    say(
      `${collected.app.name}: ${manifest.functions.length} function(s) on ${serverUrl} ${dim(`(app ${created.appId})`)}`,
    );
    await session.followLogs();
    const health = await client.call(healthRoute);
    if (health.workers === 0) {
      say(
        `no worker is connected to ${serverUrl}: calls will wait until one joins (\`SKIFF_SERVER_URL=${serverUrl} skiff worker\`)`,
      );
    }
    session.heartbeat = setInterval(
      () => client.call(appRoutes.heartbeat, { params: { id: created.appId } }).catch(() => {}),
      HEARTBEAT_MS,
    );
    session.heartbeat.unref();
    return session;
  }

  /**
   * Makes a new version of the app from a new bundle (`skiff serve` reloading its file): the server starts
   * containers of it, new requests reach them once one is ready, and the old containers finish theirs and
   * stop. The app and its URLs stay. Returns the new version's number.
   */
  async update(options: { bundle: Bundle; manifest: AppManifest; collected: CollectedApp }): Promise<number> {
    const { bundle, manifest, collected } = options;
    await this.client.putBlob(bundle.code);
    await uploadImageFiles(this.client, ...manifest.functions.map((fn) => fn.image));
    const updated = await this.client.call(appRoutes.update, {
      params: { id: this.appId },
      body: { manifest, env: this.env, bundleHash: bundle.hash, localSecrets: localSecretsOf(collected) },
    });
    this.functionIds = updated.functions;
    return updated.version;
  }

  private async followLogs(): Promise<void> {
    await this.client.streamLogs(
      this.appId,
      (lines) => {
        this.lastLogAt = Date.now();
        this.recentBatches.push({ at: this.lastLogAt, lines: lines.length });
        if (this.recentBatches.length > 64) this.recentBatches.shift();
        printLogs(lines);
      },
      this.logsEnded,
    );
  }

  /** Stops the heartbeats, and the app unless it is detached; whether the server stopped it. */
  async stop(): Promise<boolean> {
    clearInterval(this.heartbeat);
    if (this.mode === "detached") return false;
    return this.client.call(appRoutes.stop, { params: { app: this.appId } }).then(
      () => true,
      () => false,
    );
  }

  /**
   * Ends the session, with the app's last log lines printed. Container logs travel apart from results, and a
   * chatty container's last lines come after its result. An ephemeral app is stopped, and the server says
   * when its containers are gone and their lines all sent; a detached app keeps running, so this waits until
   * lines stop coming for a while.
   */
  async end(): Promise<void> {
    if (this.mode === "detached") {
      await this.quiet();
      await this.stop();
      say(`the app keeps running: stop it with \`skiff app stop ${this.appId}\``);
      return;
    }
    if (!(await this.stop())) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), LOGS_DRAIN_MAX_MS)));
    const drained = await Promise.race([this.stopped.then(() => true), timedOut]);
    clearTimeout(timer);
    if (!drained) say(dim(`stopped waiting for the app's last log lines after ${LOGS_DRAIN_MAX_MS / 1000}s`));
  }

  /**
   * Waits until no log line has come for a while: longer after a chatty end (lines still in flight come in
   * bursts), and at most LOGS_DRAIN_MAX_MS in all.
   */
  private async quiet(): Promise<void> {
    const now = Date.now();
    const lastSecond = this.recentBatches.filter((b) => b.at > now - 1000).reduce((sum, b) => sum + b.lines, 0);
    const quietMs = lastSecond >= CHATTY_LINES_PER_SECOND ? LOGS_QUIET_CHATTY_MS : LOGS_QUIET_MS;
    const drainUntil = now + LOGS_DRAIN_MAX_MS;
    await sleep(LOGS_QUIET_MS);
    while (Date.now() - this.lastLogAt < quietMs && Date.now() < drainUntil) {
      await sleep(quietMs - (Date.now() - this.lastLogAt));
    }
  }
}

const HEARTBEAT_MS = 10_000;
const LOGS_QUIET_MS = 250;
const LOGS_QUIET_CHATTY_MS = 5000;
const CHATTY_LINES_PER_SECOND = 1000;
/** The longest a session waits for its app's last log lines. */
const LOGS_DRAIN_MAX_MS = 60_000;
