import { existsSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type MemoryCgroup, readOomKills, resolveMemoryCgroup } from "./cgroup.js";
import { type CommandResult, findExecutable, runCommand } from "./command.js";
import {
  cleanupStaleNetworks,
  findLease,
  type NetworkLease,
  releaseNetwork,
  releaseSpares,
  startSpares,
  takePrivateNetwork,
} from "./network.js";
import { buildOciSpec } from "./oci-spec.js";
import { mountOverlay, mountsUnder, unmount } from "./overlay.js";
import { type Spawned, spawnCommand } from "./spawner.js";
import { startOnce } from "./start-once.js";
import type { ContainerExit, ContainerHandle, ContainerRuntime, ContainerSpec, RuntimeName } from "./types.js";

/** Options shared by the OCI runtimes. */
export interface OciRuntimeOptions {
  /** Holds the runtime's state root and one bundle (overlay + config.json) per container. */
  stateDir?: string;
  /** Path of the runtime binary; found on PATH when omitted. */
  binary?: string;
  /** Host TCP ports that containers on a private network may connect to (none by default). */
  allowHostPorts?: readonly number[];
}

/** Everything a subclass needs to know about one container. */
export interface OciContainer {
  id: string;
  bundleDir: string;
  cgroup: MemoryCgroup;
  /** Set for network "private" once its namespace exists. */
  network?: NetworkLease;
  /** Started to be checkpointed or restored (ContainerSpec.checkpointable). */
  checkpointable?: boolean;
  /** The overlay's work directory when the upper directory is kept outside the bundle. */
  workDir?: string;
}

interface Running {
  container: OciContainer;
  exited: Promise<ContainerExit>;
  done: boolean;
}

/** A file in a container's bundle directory: it was started checkpointable. */
const CHECKPOINTABLE_MARK = "checkpointable";
const ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,47}$/;
const KILL_RETRY_MS = 100;
const KILL_ATTEMPTS = 50;
/** What runc and runsc say of a container they have not created yet. */
const NOT_CREATED_YET = /container does not exist|loading sandbox: file does not exist|is not running/;

/** The container lifecycle runc and runsc share: overlay root, config.json, a foreground `run`, OOM check, teardown. */
export abstract class OciRuntime implements ContainerRuntime {
  abstract readonly name: RuntimeName;
  protected abstract readonly binaryName: string;
  protected readonly stateDir: string;
  private readonly binaryOverride: string | undefined;
  private resolvedBinary: string | undefined;
  private readonly running = new Map<string, Running>();
  private readonly allowHostPorts: readonly number[];
  private readonly starting = new Map<string, Promise<ContainerHandle>>();

  constructor(defaultStateDir: string, options: OciRuntimeOptions) {
    this.stateDir = options.stateDir ?? defaultStateDir;
    this.allowHostPorts = options.allowHostPorts ?? [];
    this.binaryOverride = options.binary;
  }

  /** Flags that go before every subcommand (state root, platform). */
  protected abstract globalArgs(): string[];
  /** The full argument list that runs a container in the foreground. */
  protected abstract runArgs(spec: ContainerSpec, container: OciContainer): string[];
  /**
   * The program and arguments that run the runtime binary for a container (`run`, `kill`, `delete`); a subclass
   * may wrap it, e.g. to run it inside the container's network namespace.
   */
  protected async commandLine(binary: string, args: string[], _container: OciContainer): Promise<[string, string[]]> {
    return [binary, args];
  }
  /** Whether config.json names the private network namespace (runc) or the runtime is started inside it. */
  protected netnsInSpec(_spec: ContainerSpec): boolean {
    return true;
  }
  /** Extra config.json options for bind mounts marked `sharedWithHost`, as this runtime binary takes them. */
  protected async sharedMountOptions(_binary: string): Promise<string[]> {
    return [];
  }
  /** Called before `run`, e.g. to prepare a cgroup. */
  protected async beforeRun(_spec: ContainerSpec, _container: OciContainer): Promise<void> {}
  /** Releases what the runtime keeps after the container exited (its state, its cgroup). */
  protected abstract release(container: OciContainer): Promise<void>;

  protected get rootDir(): string {
    return join(this.stateDir, "state");
  }

  private get bundlesDir(): string {
    return join(this.stateDir, "bundles");
  }

  async available(): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (process.getuid?.() !== 0) return { ok: false, reason: `${this.name} needs root; run the worker as root.` };
    const binary = await this.binaryPath().catch((error: Error) => error);
    if (binary instanceof Error) return { ok: false, reason: binary.message };
    const version = await runCommand(binary, ["--version"]);
    if (version.code !== 0) return { ok: false, reason: `\`${binary} --version\` failed: ${version.stderr.trim()}` };
    return { ok: true };
  }

  async start(spec: ContainerSpec): Promise<ContainerHandle> {
    validateId(spec.id);
    if ((spec.checkpointable || spec.restoreFrom) && !this.checkpoint) {
      throw new Error(`${this.name} cannot checkpoint or restore containers: use gvisor`);
    }
    return startOnce(
      this.starting,
      (id) => this.running.has(id),
      spec.id,
      () => this.startContainer(spec),
    );
  }

  async kill(id: string): Promise<void> {
    await this.starting.get(id)?.catch(() => {});
    const entry = this.running.get(id);
    if (!entry) return;
    for (let attempt = 0; attempt < KILL_ATTEMPTS && !entry.done; attempt++) {
      // Fails while the runtime has not yet created the container; retry until it exists or has exited.
      await this.control(entry.container, ["kill", id, "KILL"]);
      await Promise.race([entry.exited, sleep(KILL_RETRY_MS)]);
    }
    await entry.exited;
  }

  async exec(id: string, command: string[]): Promise<{ code: number | null; stderr: string }> {
    const entry = this.running.get(id);
    if (!entry || entry.done) return { code: null, stderr: `container ${id} is not running` };
    let result = await this.control(entry.container, ["exec", id, ...command]);
    // Right after start the runtime may not have created the container yet: wait for it, as kill does.
    for (let attempt = 1; attempt < KILL_ATTEMPTS && !entry.done && NOT_CREATED_YET.test(result.stderr); attempt++) {
      await sleep(KILL_RETRY_MS);
      result = await this.control(entry.container, ["exec", id, ...command]);
    }
    return { code: result.code, stderr: result.stderr };
  }

  async cleanupStale(): Promise<void> {
    const binary = await this.binaryPath();
    const listed = await runCommand(binary, [...this.globalArgs(), "list", "--quiet"]);
    const known = listed.code === 0 ? listed.stdout.split("\n").filter(Boolean) : [];
    const bundles = await readdir(this.bundlesDir).catch(() => [] as string[]);
    const stale = [...new Set([...known, ...bundles])].filter((id) => !this.running.has(id) && !this.starting.has(id));
    for (const id of stale) {
      const container: OciContainer = {
        id,
        bundleDir: join(this.bundlesDir, id),
        cgroup: await resolveMemoryCgroup(cgroupsPath(id)),
        network: await findLease(this.stateDir, id),
        ...(existsSync(join(this.bundlesDir, id, CHECKPOINTABLE_MARK)) ? { checkpointable: true } : {}),
      };
      // Killing first matters for runsc: `delete --force` on a running sandbox waits 5 s, then fails.
      await this.control(container, ["kill", id, "KILL"]);
      await this.teardown(container);
    }
    await cleanupStaleNetworks(this.stateDir, (id) => this.running.has(id) || this.starting.has(id));
    startSpares({ allowHostPorts: this.allowHostPorts });
  }

  async close(): Promise<void> {
    await releaseSpares();
  }

  async version(): Promise<string> {
    return (await runCommand(await this.binaryPath(), ["--version"])).stdout;
  }

  /** Set by runtimes that can save a container's state (gVisor); see ContainerRuntime.checkpoint. */
  checkpoint?(id: string, dir: string): Promise<void>;

  /** The container as started, while it runs. */
  protected runningContainer(id: string): OciContainer | undefined {
    const entry = this.running.get(id);
    return entry && !entry.done ? entry.container : undefined;
  }

  /** Runs a runtime subcommand (with the global flags) for a container. */
  protected async control(container: OciContainer, args: string[]): Promise<CommandResult> {
    const [file, fullArgs] = await this.commandLine(
      await this.binaryPath(),
      [...this.globalArgs(), ...args],
      container,
    );
    return runCommand(file, fullArgs);
  }

  protected async binaryPath(): Promise<string> {
    if (this.binaryOverride) return this.binaryOverride;
    this.resolvedBinary ??= await findExecutable(this.binaryName);
    if (!this.resolvedBinary) {
      throw new Error(
        `${this.binaryName} not found on PATH; run \`make setup\` or install it, or pick another runtime.`,
      );
    }
    return this.resolvedBinary;
  }

  private async startContainer(spec: ContainerSpec): Promise<ContainerHandle> {
    const binary = await this.binaryPath();
    const container: OciContainer = {
      id: spec.id,
      bundleDir: join(this.bundlesDir, spec.id),
      cgroup: await resolveMemoryCgroup(cgroupsPath(spec.id)),
      ...(spec.checkpointable ? { checkpointable: true } : {}),
    };
    await claimBundleDir(container);
    const child = await this.launch(binary, spec, container).catch(async (error: unknown) => {
      await this.teardown(container).catch(() => {});
      throw error;
    });
    const ended = this.waitForExit(child, container);
    // A failed teardown still ends the container: it is logged by the caller's exit path as before.
    const exited = ended.then(async (exit) => {
      await this.teardown(container);
      return exit;
    });
    const entry: Running = { container, exited, done: false };
    const forget = () => {
      entry.done = true;
      this.running.delete(spec.id);
    };
    entry.exited.then(forget, forget);
    this.running.set(spec.id, entry);
    return {
      id: spec.id,
      stdout: child.stdout,
      stderr: child.stderr,
      ...(child.stdin ? { stdin: child.stdin } : {}),
      exited: entry.exited,
      ended,
    };
  }

  private async launch(binary: string, spec: ContainerSpec, container: OciContainer): Promise<Spawned> {
    // In parallel; each records what it made, so a failure of one still tears down the other.
    const [overlay, network] = await Promise.all([
      mountOverlay([spec.rootfs, ...(spec.layers ?? [])], container.bundleDir, spec.upperDir).then((dirs) => {
        if (spec.upperDir) container.workDir = dirs.work;
        return dirs;
      }),
      spec.network === "private"
        ? takePrivateNetwork(this.stateDir, spec.id, { allowHostPorts: this.allowHostPorts }).then(
            (lease) => (container.network = lease),
          )
        : undefined,
    ]);
    const netnsPath = network && this.netnsInSpec(spec) ? network.netnsPath : undefined;
    const shared = spec.mounts.some((mount) => mount.sharedWithHost) ? await this.sharedMountOptions(binary) : [];
    const config = buildOciSpec(spec, overlay.merged, cgroupsPath(spec.id), netnsPath, shared);
    await writeFile(join(container.bundleDir, "config.json"), JSON.stringify(config));
    // How a later worker's cleanupStale() knows to run its commands for it the same way.
    if (spec.checkpointable) await writeFile(join(container.bundleDir, CHECKPOINTABLE_MARK), "");
    await this.beforeRun(spec, container);
    const [file, args] = await this.commandLine(binary, this.runArgs(spec, container), container);
    const child = spawnCommand(file, args, { stdin: spec.stdin ?? false });
    await child.started;
    return child;
  }

  /** How the container's process ended, and whether its cgroup saw an OOM kill; its resources are still held. */
  private async waitForExit(child: Spawned, container: OciContainer): Promise<ContainerExit> {
    const { code, signal } = await child.exited;
    const oomKilled = (await readOomKills(container.cgroup)) > 0;
    return { ...toContainerExit(code, signal), oomKilled };
  }

  private async teardown(container: OciContainer): Promise<void> {
    await this.release(container);
    if (container.network) await releaseNetwork(container.network);
    for (const mountPoint of await mountsUnder(container.bundleDir)) await unmount(mountPoint);
    await rm(container.bundleDir, { recursive: true, force: true });
    if (container.workDir) await rm(container.workDir, { recursive: true, force: true });
  }
}

/** The relative cgroup path of a container; relative so runc and runsc nest it under the worker's own cgroup. */
export function cgroupsPath(id: string): string {
  return `skiff/${id}`;
}

/** Turns the runtime CLI's exit status into the container's: 128+N means the container died of signal N. */
export function toContainerExit(code: number | null, signal: NodeJS.Signals | null): Omit<ContainerExit, "oomKilled"> {
  if (signal) return { exitCode: null, signal };
  if (code !== null && code > 128 && code < 128 + 65) {
    const name = signalName(code - 128);
    if (name) return { exitCode: null, signal: name };
  }
  return { exitCode: code, signal: null };
}

function signalName(num: number): string | undefined {
  return Object.entries(constants.signals).find(([, value]) => value === num)?.[0];
}

async function claimBundleDir(container: OciContainer): Promise<void> {
  await mkdir(join(container.bundleDir, ".."), { recursive: true });
  await mkdir(container.bundleDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== "EEXIST") throw error;
    throw new Error(
      `State for container ${container.id} already exists in ${container.bundleDir}; run cleanupStale() or pick a new id.`,
    );
  });
}

function validateId(id: string): void {
  if (!ID_PATTERN.test(id)) throw new Error(`Invalid container id "${id}": use [a-z0-9-], at most 48 characters.`);
}
