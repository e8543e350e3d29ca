import { randomUUID } from "node:crypto";
import { rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { ImageSecrets, ImageStep } from "@skiff/protocol";
import { forEachLine } from "../line-splitter.js";
import { redactor } from "../redact.js";
import type { ContainerRuntime, Mount } from "../runtime/types.js";
import { ContainerMounts } from "../volumes/container-mounts.js";
import { type BuiltImage, ImageBuildError } from "./built-image.js";
import { PATH } from "./steps.js";

/** What every build step runs with on this worker (a part of ImageBuilderOptions). */
export interface StepHost {
  runtime: ContainerRuntime;
  npmDir: string | undefined;
  caBundle: string | undefined;
  /**
   * Where a step's volumes come from (the server's volume API) and where they are mounted on this host
   * (the worker's mounts directory, which a restarted worker clears).
   */
  volumes?: { serverUrl: string; mountsDir: string };
}

/** One build step to run: its script over the layers below it, writing into `upper`. */
export interface StepRun {
  /** The layer's key, part of the container's id. */
  key: string;
  script: string;
  step: ImageStep;
  /** The values of the step's secrets, as environment variables. */
  secrets: Record<string, string>;
  /** The grant that reaches the step's volumes, when it mounts any (see ImageSecrets). */
  grant: ImageSecrets["buildVolumes"];
  below: BuiltImage;
  base: { rootfs: string; nodeDir: string };
  upper: string;
  where: { step: number; total: number; description: string };
  log: (line: string) => void;
}

const TAIL_LINES = 20;

/**
 * Runs a build step's script in a container whose root is the layers below it, read-only, with its
 * writes captured in `upper`; its lines (secret values redacted) go to `log`, and a failure throws an
 * ImageBuildError with the end of its output. The volumes a `run` step mounts are bound in at their paths
 * while it runs, and what it wrote there is committed when it succeeds (dropped when it fails).
 */
export async function runStep(host: StepHost, run: StepRun): Promise<void> {
  const dir = host.volumes && join(host.volumes.mountsDir, `build-${run.key.slice(0, 16)}-${randomUUID().slice(0, 8)}`);
  const volumes = await mountVolumes(host, run, dir);
  if (!volumes) return runIn(host, run, []);
  let failure: unknown;
  try {
    await runIn(host, run, volumes.runtimeMounts);
  } catch (error) {
    failure = error;
  }
  const problems = await volumes.close({ commit: failure === undefined });
  // Each mount removed its own folder; one still mounted keeps it (a restarted worker clears it).
  if (dir) await rmdir(dir).catch(() => {});
  const { where } = run;
  const said =
    problems.length > 0 && `image step ${where.step}/${where.total} ${where.description}: ${problems.join("; ")}`;
  if (failure !== undefined) {
    if (said) run.log(said);
    throw failure;
  }
  // Not committed: the layer is not kept either, so that the next build runs the step again.
  if (said) throw new Error(`${said}: build again`);
}

/** Mounts the volumes of a `run` step with the build's grant (undefined when it mounts none). */
async function mountVolumes(
  host: StepHost,
  run: StepRun,
  dir: string | undefined,
): Promise<ContainerMounts | undefined> {
  const { step, grant, where, log } = run;
  if (step.kind !== "run" || !step.volumes) return undefined;
  const what = `image step ${where.step}/${where.total} ${where.description}`;
  if (!host.volumes || !dir) throw new Error(`${what}: this worker cannot mount volumes in build steps`);
  if (!grant) throw new Error(`${what}: it mounts volumes, and the server sent no token for them`);
  return ContainerMounts.mount({
    mounts: step.volumes.map((volume) => ({ kind: "volume", readOnly: false, ...volume })),
    env: grant.env,
    serverUrl: host.volumes.serverUrl,
    token: grant.token,
    bucketCredentials: {},
    dir,
    warn: (line) => log(`${what}: ${line}`),
  }).catch((error: Error) => {
    throw new Error(`${what}: ${error.message}`);
  });
}

async function runIn(host: StepHost, run: StepRun, volumeMounts: Mount[]): Promise<void> {
  const { key, script, step, secrets, below, base, upper, where, log } = run;
  const mounts: Mount[] = [{ source: base.nodeDir, target: "/.skiff/node", readonly: true }];
  const tls: Record<string, string> = {};
  if (host.caBundle) {
    mounts.push({ source: host.caBundle, target: "/.skiff/ca.crt", readonly: true });
    Object.assign(tls, { NODE_EXTRA_CA_CERTS: "/.skiff/ca.crt", SSL_CERT_FILE: "/.skiff/ca.crt" });
  }
  if (step.kind === "npm") {
    if (!host.npmDir) throw new Error("npm is not installed on this worker, so npmInstall cannot run");
    mounts.push({ source: host.npmDir, target: "/.skiff/npm", readonly: true });
  }
  mounts.push(...volumeMounts);
  const handle = await host.runtime.start({
    id: `build-${key.slice(0, 16)}-${randomUUID().slice(0, 8)}`,
    rootfs: base.rootfs,
    layers: below.layers,
    upperDir: upper,
    command: ["/bin/sh", "-c", script],
    env: {
      ...tls,
      ...below.env,
      ...secrets,
      PATH,
      HOME: below.user?.home ?? "/root",
      DEBIAN_FRONTEND: "noninteractive",
    },
    ...(below.user ? { user: { uid: below.user.uid, gid: below.user.gid } } : {}),
    cwd: below.cwd,
    mounts,
    cpu: 2,
    memoryMiB: 4096,
    network: "private",
  });
  const tail: string[] = [];
  // A step's secret values never reach its log, whatever it prints.
  const redact = redactor(Object.values(secrets));
  const onLine = (raw: string) => {
    const line = redact(raw.replace(/\r$/, ""));
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    log(line);
  };
  // The streams can still hold the last lines when the container is gone: wait for both ends.
  const ended = [handle.stdout, handle.stderr].map((stream) => {
    forEachLine(stream, onLine);
    return new Promise((resolve) => stream.once("close", resolve));
  });
  const exit = await handle.exited;
  await Promise.race([Promise.all(ended), new Promise((resolve) => setTimeout(resolve, 1000))]);
  if (exit.exitCode !== 0) {
    throw new ImageBuildError(where.step, where.total, where.description, exit.exitCode, tail);
  }
}
