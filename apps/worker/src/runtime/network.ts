import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { findExecutable, runChecked, runCommand } from "./command.js";
import { withFileLock } from "./file-lock.js";

/**
 * Private container networking: one network namespace per container, joined to the host by a veth pair on the
 * bridge `skiff0` (10.213.0.1/16), with egress NATed out of the host and no access to the host itself.
 *
 * Host-wide state, shared by every worker process on the host:
 * - the bridge, IPv4 forwarding, a MASQUERADE rule, a FORWARD rule dropping container → container traffic and
 *   the filter chain SKIFF-INPUT (containers → host: DROP, except replies and the TCP ports the worker was told
 *   to allow), created once and idempotently under a lock;
 * - each container's host-side veth is an isolated bridge port, so no container reaches another over the bridge;
 * - /run/skiff/net/claims/<n>: one file per address in use (host part n), holding its owner (a runtime's state
 *   dir), container id and worker pid. Claims are made under the lock before the namespace exists, so a
 *   `skiff-*` namespace or `skv*` veth without a claim is a leftover.
 */
export const BRIDGE = "skiff0";
export const GATEWAY = "10.213.0.1";
export const SUBNET = "10.213.0.0/16";
const PREFIX_LENGTH = 16;
const FIRST_HOST = 2;
const LAST_HOST = 65_534;
const INPUT_CHAIN = "SKIFF-INPUT";
const NET_DIR = process.env.SKIFF_NET_DIR ?? "/run/skiff/net";
const CLAIMS_DIR = join(NET_DIR, "claims");
const LOCK = join(NET_DIR, "lock");
const CURSOR = join(NET_DIR, "cursor");
const NETNS_PREFIX = "skiff-";
const VETH_PREFIX = "skv";

/** One container's network: its namespace and address. */
export interface NetworkLease {
  owner: string;
  id: string;
  index: number;
  address: string;
  netns: string;
  netnsPath: string;
  hostVeth: string;
}

interface Claim {
  owner: string;
  id: string;
  pid: number;
}

let bridgeReady: Promise<void> | undefined;
let localQueue: Promise<unknown> = Promise.resolve();

/**
 * Namespaces made ahead of time, never used: a container's start takes one instead of waiting for `ip` (about
 * 50 ms here, most of the gap between a cold call and a bare `runc run`). Their claims name SPARE_OWNER and
 * this process, so only this process's end makes them stale.
 */
const SPARE_OWNER = "spare";
const SPARES = 2;
const REFILL_DELAY_MS = 1000;
const spares: NetworkLease[] = [];
let refilling: Promise<void> | undefined;
/** False after releaseSpares(): a refill still pending then makes nothing. */
let sparesWanted = false;

/**
 * The network of a new container: a spare namespace made earlier if there is one, else a new one; either way
 * the spares are topped up behind it.
 */
export async function takePrivateNetwork(
  owner: string,
  id: string,
  options: { allowHostPorts?: readonly number[] } = {},
): Promise<NetworkLease> {
  const spare = spares.shift();
  // Later, not now: making a namespace forks `ip` twice, and forking this process stalls it for milliseconds
  // each time, right when the container being started needs it.
  setTimeout(() => refillSpares(options), REFILL_DELAY_MS).unref();
  if (spare) {
    const lease = await locked(() => reassign(spare, { owner, id, pid: process.pid })).catch(() => undefined);
    if (lease) return lease;
    await releaseNetwork(spare);
  }
  return setupPrivateNetwork(owner, id, options);
}

/** Keeps spare namespaces from now on (until releaseSpares), making the first ones in the background. */
export function startSpares(options: { allowHostPorts?: readonly number[] } = {}): void {
  sparesWanted = true;
  refillSpares(options);
}

/** Makes spare namespaces up to SPARES, one at a time, in the background. */
function refillSpares(options: { allowHostPorts?: readonly number[] }): void {
  if (!sparesWanted) return;
  refilling ??= (async () => {
    try {
      while (sparesWanted && spares.length < SPARES) {
        spares.push(await setupPrivateNetwork(SPARE_OWNER, `spare-${randomUUID().slice(0, 8)}`, options));
      }
    } catch {
      // A start that finds no spare makes its own namespace and reports what fails.
    } finally {
      refilling = undefined;
    }
  })();
}

/** Deletes the spare namespaces (at shutdown). */
export async function releaseSpares(): Promise<void> {
  sparesWanted = false;
  await refilling;
  for (const spare of spares.splice(0)) await releaseNetwork(spare);
}

/** Gives a spare's claim to a container, if the spare is still this process's (a cleanup may have freed it). */
async function reassign(spare: NetworkLease, claim: Claim): Promise<NetworkLease> {
  const held = await readClaim(spare.index);
  if (held?.owner !== SPARE_OWNER || held.id !== spare.id || held.pid !== process.pid || !existsSync(spare.netnsPath)) {
    throw new Error(`spare network ${spare.netns} is gone`);
  }
  await writeFile(claimPath(spare.index), JSON.stringify(claim));
  return toLease(claim.owner, claim.id, spare.index);
}

/** Creates the namespace, veth pair and address of one container; undone by releaseNetwork(). */
export async function setupPrivateNetwork(
  owner: string,
  id: string,
  options: { allowHostPorts?: readonly number[] } = {},
): Promise<NetworkLease> {
  bridgeReady ??= locked(() => ensureBridge(options.allowHostPorts ?? []));
  await bridgeReady.catch((error: unknown) => {
    bridgeReady = undefined;
    throw error;
  });
  const index = await locked(() => claimAddress({ owner, id, pid: process.pid }));
  const lease = toLease(owner, id, index);
  try {
    const ip = await ipBinary();
    await ipBatch(
      ip,
      [],
      [
        `netns add ${lease.netns}`,
        `link add ${lease.hostVeth} type veth peer name eth0 netns ${lease.netns}`,
        `link set ${lease.hostVeth} master ${BRIDGE} up`,
        // An isolated port reaches the bridge (the host, and through it the outside) but no other isolated
        // port: containers never reach each other, whatever their app or workspace.
        `link set ${lease.hostVeth} type bridge_slave isolated on`,
      ],
    );
    await writeFile(`/proc/sys/net/ipv6/conf/${lease.hostVeth}/disable_ipv6`, "1").catch(() => {});
    await ipBatch(
      ip,
      ["-n", lease.netns],
      [
        "link set lo up",
        `addr add ${lease.address}/${PREFIX_LENGTH} dev eth0`,
        "link set eth0 up",
        `route add default via ${GATEWAY}`,
      ],
    );
  } catch (error) {
    await releaseNetwork(lease);
    throw new Error(`Setting up the network of container ${id} failed: ${(error as Error).message}`);
  }
  return lease;
}

/** Deletes the container's veth and namespace and frees its address. Idempotent. */
export async function releaseNetwork(lease: NetworkLease): Promise<void> {
  await removeLinks(lease.hostVeth, lease.netns);
  await locked(async () => {
    const claim = await readClaim(lease.index);
    if (claim && claim.owner === lease.owner && claim.id === lease.id) await unlink(claimPath(lease.index));
  });
}

/**
 * Frees what an earlier worker left: claims of `owner` whose container is not live, claims of any owner whose
 * worker process is gone, and namespaces and veths without a claim. Other owners' live claims are left alone.
 */
export async function cleanupStaleNetworks(owner: string, isLive: (id: string) => boolean): Promise<void> {
  if (!(await hasClaimsDir()) && !(await listNetns()).length) return;
  await locked(async () => {
    const claimed = new Set<number>();
    for (const index of await listClaims()) {
      const claim = await readClaim(index);
      const stale = !claim || (claim.owner === owner && !isLive(claim.id)) || !processExists(claim.pid);
      if (!stale) {
        claimed.add(index);
        continue;
      }
      await removeLinks(vethName(index), netnsName(index));
      await unlink(claimPath(index)).catch(() => {});
    }
    for (const netns of await listNetns()) {
      if (!claimed.has(indexOf(netns, NETNS_PREFIX))) await removeLinks(undefined, netns);
    }
    for (const veth of await listVeths()) {
      if (!claimed.has(indexOf(veth, VETH_PREFIX))) await removeLinks(veth, undefined);
    }
  });
}

/** The live lease of `owner`'s container `id`, from its claim file, if it has one. */
export async function findLease(owner: string, id: string): Promise<NetworkLease | undefined> {
  for (const index of await listClaims()) {
    const claim = await readClaim(index);
    if (claim?.owner === owner && claim.id === id) return toLease(owner, id, index);
  }
  return undefined;
}

export function netnsName(index: number): string {
  return `${NETNS_PREFIX}${index}`;
}

function vethName(index: number): string {
  return `${VETH_PREFIX}${index}`;
}

function toLease(owner: string, id: string, index: number): NetworkLease {
  const netns = netnsName(index);
  return {
    owner,
    id,
    index,
    address: `10.213.${index >> 8}.${index & 255}`,
    netns,
    netnsPath: `/var/run/netns/${netns}`,
    hostVeth: vethName(index),
  };
}

/** Serializes within this process (no polling), then across processes with the lock file. */
function locked<T>(fn: () => Promise<T>): Promise<T> {
  const run = localQueue.then(async () => {
    await mkdir(CLAIMS_DIR, { recursive: true });
    return withFileLock(LOCK, fn, 60_000);
  });
  localQueue = run.catch(() => {});
  return run;
}

/** Matches and accepts packets of connections already allowed (replies). */
const REPLIES = ["-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"];

/** The bridge, NAT and host firewall, once per process; `allowHostPorts` are host TCP ports containers may reach. */
async function ensureBridge(allowHostPorts: readonly number[]): Promise<void> {
  const ip = await ipBinary();
  if ((await runCommand(ip, ["link", "show", BRIDGE])).code !== 0) {
    await runChecked(ip, ["link", "add", BRIDGE, "type", "bridge"]);
  }
  // No IPv6 on the bridge: a link-local address would let containers reach host services bound to `::`.
  await writeFile(`/proc/sys/net/ipv6/conf/${BRIDGE}/disable_ipv6`, "1").catch(() => {});
  await runChecked(ip, ["addr", "replace", `${GATEWAY}/${PREFIX_LENGTH}`, "dev", BRIDGE]);
  await runChecked(ip, ["link", "set", BRIDGE, "up"]);
  await writeFile("/proc/sys/net/ipv4/ip_forward", "1");

  const iptables = await requiredBinary("iptables");
  await ensureRule(iptables, "nat", "-A", ["POSTROUTING", "-s", SUBNET, "!", "-o", BRIDGE, "-j", "MASQUERADE"]);
  // Egress even where the FORWARD policy is DROP (as Docker sets it).
  await ensureRule(iptables, "filter", "-I", ["FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "ACCEPT"]);
  await ensureRule(iptables, "filter", "-I", ["FORWARD", "-o", BRIDGE, ...REPLIES]);
  // Container → container through the host (a route via the gateway, or bridged frames where br_netfilter
  // passes them to iptables): dropped, first in the chain. Bridge port isolation stops the rest.
  await ensureRule(iptables, "filter", "-I", ["FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP"]);
  // Containers → host: nothing but replies and the allowed ports. Allowances are only ever added (a worker
  // with other ports may share the host); they last until reboot or `iptables -F SKIFF-INPUT`.
  if ((await runCommand(iptables, ["-w", "-t", "filter", "-n", "-L", INPUT_CHAIN])).code !== 0) {
    await runChecked(iptables, ["-w", "-t", "filter", "-N", INPUT_CHAIN]);
  }
  await ensureRule(iptables, "filter", "-A", [INPUT_CHAIN, "-j", "DROP"]);
  for (const port of allowHostPorts) {
    await ensureRule(iptables, "filter", "-I", [INPUT_CHAIN, "-p", "tcp", "--dport", String(port), "-j", "ACCEPT"]);
  }
  await ensureRule(iptables, "filter", "-I", [INPUT_CHAIN, ...REPLIES]);
  await ensureRule(iptables, "filter", "-I", ["INPUT", "-s", SUBNET, "-j", INPUT_CHAIN]);
  const ip6tables = await findExecutable("ip6tables");
  if (ip6tables) await ensureRule(ip6tables, "filter", "-I", ["INPUT", "-i", BRIDGE, "-j", "DROP"]);
}

/** Adds a rule unless `iptables -C` finds it; `-I` puts it first in its chain, `-A` last. */
async function ensureRule(binary: string, table: string, how: "-A" | "-I", rule: string[]): Promise<void> {
  const [chain, ...spec] = rule as [string, ...string[]];
  if ((await runCommand(binary, ["-w", "-t", table, "-C", chain, ...spec])).code === 0) return;
  await runChecked(binary, ["-w", "-t", table, how, chain, ...spec]);
}

async function claimAddress(claim: Claim): Promise<number> {
  const taken = new Set(await listClaims());
  const cursor = Number.parseInt(await readFile(CURSOR, "utf8").catch(() => ""), 10);
  const start = Number.isInteger(cursor) && cursor >= FIRST_HOST && cursor <= LAST_HOST ? cursor : FIRST_HOST;
  const size = LAST_HOST - FIRST_HOST + 1;
  // Round robin from the cursor, so a freed address is reused as late as possible (stale ARP and conntrack).
  for (let step = 0; step < size; step++) {
    const index = FIRST_HOST + ((start - FIRST_HOST + step) % size);
    if (taken.has(index)) continue;
    await writeFile(claimPath(index), JSON.stringify(claim), { flag: "wx" });
    await writeFile(CURSOR, String(index + 1 > LAST_HOST ? FIRST_HOST : index + 1));
    return index;
  }
  throw new Error(`No free address left in ${SUBNET}.`);
}

async function removeLinks(veth: string | undefined, netns: string | undefined): Promise<void> {
  const ip = await ipBinary();
  if (veth) await runCommand(ip, ["link", "del", veth]);
  if (netns) await runCommand(ip, ["netns", "del", netns]);
}

async function hasClaimsDir(): Promise<boolean> {
  return readdir(CLAIMS_DIR).then(
    () => true,
    () => false,
  );
}

async function listClaims(): Promise<number[]> {
  const names = await readdir(CLAIMS_DIR).catch(() => [] as string[]);
  return names.filter((name) => /^\d+$/.test(name)).map(Number);
}

async function readClaim(index: number): Promise<Claim | undefined> {
  try {
    return JSON.parse(await readFile(claimPath(index), "utf8")) as Claim;
  } catch {
    return undefined;
  }
}

function claimPath(index: number): string {
  return join(CLAIMS_DIR, String(index));
}

async function listNetns(): Promise<string[]> {
  const names = await readdir("/var/run/netns").catch(() => [] as string[]);
  return names.filter((name) => new RegExp(`^${NETNS_PREFIX}\\d+$`).test(name));
}

async function listVeths(): Promise<string[]> {
  const names = await readdir("/sys/class/net").catch(() => [] as string[]);
  return names.filter((name) => new RegExp(`^${VETH_PREFIX}\\d+$`).test(name));
}

function indexOf(name: string, prefix: string): number {
  return Number(name.slice(prefix.length));
}

function processExists(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

let ipPath: string | undefined;
async function ipBinary(): Promise<string> {
  ipPath ??= await requiredBinary("ip");
  return ipPath;
}

async function requiredBinary(name: string): Promise<string> {
  const path = await findExecutable(name);
  if (!path) throw new Error(`${name} not found; private container networking needs it (run \`make setup\`).`);
  return path;
}

/** Runs `ip [globalArgs] -batch -` with the commands on stdin; rejects with ip's error output. */
async function ipBatch(ip: string, globalArgs: string[], commands: string[]): Promise<void> {
  const result = await runCommand(ip, [...globalArgs, "-batch", "-"], { input: `${commands.join("\n")}\n` });
  if (result.code !== 0) throw new Error(`ip ${globalArgs.join(" ")} -batch failed: ${result.stderr.trim()}`);
}
