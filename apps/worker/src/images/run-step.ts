import { randomUUID } from "node:crypto";
import type { ImageStep } from "@skiff/protocol";
import { forEachLine } from "../line-splitter.js";
import { redactor } from "../redact.js";
import type { ContainerRuntime, Mount } from "../runtime/types.js";
import { type BuiltImage, ImageBuildError } from "./built-image.js";
import { PATH } from "./steps.js";

/** What every build step runs with on this worker (a part of ImageBuilderOptions). */
export interface StepHost {
  runtime: ContainerRuntime;
  npmDir: string | undefined;
  caBundle: string | undefined;
}

/** One build step to run: its script over the layers below it, writing into `upper`. */
export interface StepRun {
  /** The layer's key, part of the container's id. */
  key: string;
  script: string;
  step: ImageStep;
  /** The values of the step's secrets, as environment variables. */
  secrets: Record<string, string>;
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
 * ImageBuildError with the end of its output.
 */
export async function runStep(host: StepHost, run: StepRun): Promise<void> {
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
