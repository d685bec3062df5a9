/**
 * `cocoon proxy register|unregister|status|unstake`: a proxy's entry in the root contract, the network's directory.
 *
 * The root registers a proxy by the config of its (genuine, staked) proxy contract, and only its owner may: the
 * network's governance vouches for each proxy, as in the original Cocoon (whose root owner adds proxies). So:
 *   1. the proxy operator deploys and stakes its proxy contract (`cocoon devnet` does it; `unstake` undoes it);
 *   2. the root's owner runs `register` with the proxy contract and the proxy's public endpoints (re-running it
 *      updates the endpoints), optionally allow-listing the proxy's attested image in the same transaction;
 *   3. clients and workers started with `--root` find it there (src/client/discovery.ts);
 *   4. `unregister` (root owner) removes it; the operator then unstakes (`unstake start`, and after the root's
 *      unstake delay `unstake finish`).
 * Every command takes a payments config (`--payments FILE`: network, endpoint, root, the wallet that signs).
 */
import type { Command } from "commander";
import { Address } from "@ton/core";
import { ImageKind, registerProxyBody, removeProxyBody, setImageBody, ROOT_OP_VALUE, APPROVE_KEY_VALUE, RootContract } from "../chain/contracts/RootContract.js";
import { finishUnstakeBody, startUnstakeBody, PROXY_OP_VALUE } from "../chain/contracts/ProxyContract.js";
import { confirmFundsMovement } from "../chain/network.js";
import { decodeProxyEndpoints, describeHostPort, encodeProxyEndpoints, parseEndpointHostPort, type ProxyEndpoints } from "../chain/proxy-endpoints.js";
import { connectChain, loadPaymentsConfig, type PaymentsConfig } from "../payments/config.js";
import { parseAddress, type TonAccess } from "../payments/ton.js";

const tonOf = (n: bigint) => `${(Number(n) / 1e9).toFixed(3)} TON`;
/** How long a command waits for the root (or proxy contract) to show what it sent. */
const APPLY_TIMEOUT_MS = 60_000;
const POLL_MS = 500;

export interface ProxyAdminDeps {
  print?: (s: string) => void;
  /** Skip the mainnet confirmation. */
  yes?: boolean;
  timeoutMs?: number;
}

export interface RegisterOptions {
  /** Proxy contract to register; default: the payments config's `proxyContract`. */
  proxyContract?: string;
  clients?: string;
  workers?: string;
  /** Ed25519 identity key of the proxy (hex, 32 bytes); default: its payout key. */
  identityKey?: string;
  /** Proxy image digest (hex sha256) to allow-list in the same transaction. */
  image?: string;
  /** The owner checked that the payout key lives in attested proxy code (the root approves it). */
  keyAttested?: boolean;
}

function hostPortOption(value: string | undefined, flag: string) {
  if (value === undefined) return undefined;
  const hp = parseEndpointHostPort(value);
  if (!hp) throw new Error(`${flag} "${value}" is not HOST:PORT (a public DNS name or address and a port 1..65535)`);
  return hp;
}

function hex32(value: string, flag: string): Buffer {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new Error(`${flag} must be 64 hex characters (32 bytes), got "${value.slice(0, 80)}"`);
  return Buffer.from(value, "hex");
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`sent, but after ${Math.round(timeoutMs / 1000)} s the chain does not show ${what} yet; check again with "cocoon proxy status"`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Throws unless the payments config's wallet owns the root (only the owner registers and removes proxies). */
async function assertRootOwner(ton: TonAccess, c: PaymentsConfig, wallet: Address): Promise<void> {
  const info = await ton.client.open(RootContract.fromAddress(c.root)).getInfo();
  if (!info.owner.equals(wallet)) {
    throw new Error(`only the root's owner (${info.owner.toString()}) registers and removes proxies; the wallet of ${c.file ?? "the payments config"} is ${wallet.toString()}`);
  }
}

export async function registerProxyCommand(file: string, o: RegisterOptions, deps: ProxyAdminDeps = {}): Promise<{ proxy: Address; endpoint: string }> {
  const print = deps.print ?? console.log;
  const c = loadPaymentsConfig(file);
  const proxy = o.proxyContract ? parseAddress(o.proxyContract, "--proxy-contract") : c.proxyContract;
  const endpoints: ProxyEndpoints = {};
  const clients = hostPortOption(o.clients, "--clients");
  const workers = hostPortOption(o.workers, "--workers");
  if (clients) endpoints.clients = clients;
  if (workers) endpoints.workers = workers;
  const endpoint = encodeProxyEndpoints(endpoints);
  const image = o.image !== undefined ? hex32(o.image, "--image") : undefined;
  const { ton, wallet } = await connectChain(c);
  await assertRootOwner(ton, c, wallet.address);
  // Only a genuine proxy contract under this root can be registered (the root rebuilds its address from the config).
  const config = await ton.assertGenuineProxy(proxy, c.root).catch((e: Error) => {
    throw new Error(`cannot register ${proxy.toString()}: ${e.message}`);
  });
  const [state, params] = await Promise.all([ton.proxyState(proxy), ton.rootParams(c.root)]);
  if (!state.active) {
    throw new Error(`proxy contract ${proxy.toString()} is not active: it holds a stake of ${tonOf(state.stake)}${state.unstakeAt ? " and is unstaking" : ""}; it needs at least ${tonOf(config.minStake)} and no unstake in progress (the operator adds stake with an AddStake message from its wallet)`);
  }
  if (config.minStake < params.minProxyStake) {
    throw new Error(`proxy contract ${proxy.toString()} was configured with a minimum stake of ${tonOf(config.minStake)}, under the root's ${tonOf(params.minProxyStake)}; the root refuses it`);
  }
  const identityKey = o.identityKey !== undefined ? hex32(o.identityKey, "--identity-key") : config.signingKey;
  await confirmFundsMovement(c.network, `register proxy ${proxy.toString()} on root ${c.root.toString()}`, { yes: deps.yes });
  const registration = { owner: config.owner, minStake: config.minStake, unstakeDelay: config.unstakeDelay };
  const messages = [
    ...(image ? [{ to: c.root, value: ROOT_OP_VALUE, body: setImageBody(ImageKind.PROXY, image, true) }] : []),
    {
      to: c.root,
      value: ROOT_OP_VALUE + (o.keyAttested ? APPROVE_KEY_VALUE : 0n),
      body: registerProxyBody(registration, { signingKey: config.signingKey, identityKey, endpoint }, o.keyAttested ?? false),
    },
  ];
  await wallet.sendBatch(messages);
  await waitFor(async () => (await ton.rootSnapshot(c.root)).proxies.get(proxy.toRawString())?.endpoint === endpoint, deps.timeoutMs ?? APPLY_TIMEOUT_MS, `the registration of ${proxy.toString()}`);
  const e = decodeProxyEndpoints(endpoint);
  print(`registered proxy ${proxy.toString()} on root ${c.root.toString()}: clients connect to ${describeHostPort(e.clients)}, workers to ${describeHostPort(e.workers)}; stake ${tonOf(state.stake)}${image ? `; proxy image ${o.image!.toLowerCase()} allowed` : ""}`);
  return { proxy, endpoint };
}

export async function unregisterProxyCommand(file: string, o: { proxyContract?: string }, deps: ProxyAdminDeps = {}): Promise<Address> {
  const print = deps.print ?? console.log;
  const c = loadPaymentsConfig(file);
  const proxy = o.proxyContract ? parseAddress(o.proxyContract, "--proxy-contract") : c.proxyContract;
  const { ton, wallet } = await connectChain(c);
  await assertRootOwner(ton, c, wallet.address);
  if (!(await ton.rootSnapshot(c.root)).proxies.has(proxy.toRawString())) {
    throw new Error(`proxy ${proxy.toString()} is not registered on root ${c.root.toString()}; nothing to remove ("cocoon proxy status" lists what is)`);
  }
  await confirmFundsMovement(c.network, `unregister proxy ${proxy.toString()}`, { yes: deps.yes });
  await wallet.sendBatch([{ to: c.root, value: ROOT_OP_VALUE, body: removeProxyBody(proxy) }]);
  await waitFor(async () => !(await ton.rootSnapshot(c.root)).proxies.has(proxy.toRawString()), deps.timeoutMs ?? APPLY_TIMEOUT_MS, `the removal of ${proxy.toString()}`);
  print(`unregistered proxy ${proxy.toString()}: clients and workers that read the root stop using it at their next refresh; its operator can now unstake ("cocoon proxy unstake start")`);
  return proxy;
}

export interface RegisteredProxyStatus {
  address: string;
  endpoints: { clients?: string; workers?: string };
  stake?: string;
  active?: boolean;
  unstakeAt?: number;
  problem?: string;
}

/** Every proxy registered on the root, with its endpoints and its contract's stake. */
export async function proxyStatusCommand(file: string, deps: ProxyAdminDeps = {}): Promise<{ version: number; proxies: RegisteredProxyStatus[] }> {
  const print = deps.print ?? console.log;
  const c = loadPaymentsConfig(file);
  const { ton } = await connectChain(c);
  const snap = await ton.rootSnapshot(c.root);
  const proxies = await Promise.all([...snap.proxies.values()].map(async (p): Promise<RegisteredProxyStatus> => {
    const e = decodeProxyEndpoints(p.endpoint);
    const base = {
      address: p.address.toString(),
      endpoints: { ...(e.clients ? { clients: describeHostPort(e.clients) } : {}), ...(e.workers ? { workers: describeHostPort(e.workers) } : {}) },
    };
    try {
      const s = await ton.proxyState(p.address);
      return { ...base, stake: s.stake.toString(), active: s.active, ...(s.unstakeAt ? { unstakeAt: s.unstakeAt } : {}) };
    } catch (err) {
      return { ...base, problem: `cannot read its contract: ${(err as Error).message}` };
    }
  }));
  print(`root ${c.root.toString()} (version ${snap.version}): ${proxies.length} registered prox${proxies.length === 1 ? "y" : "ies"}`);
  for (const p of proxies) {
    const where = `clients ${p.endpoints.clients ?? "(none)"}, workers ${p.endpoints.workers ?? "(none)"}`;
    const money = p.problem ?? `stake ${tonOf(BigInt(p.stake!))}, ${p.active ? "active" : p.unstakeAt ? `unstaking (finish from ${new Date(p.unstakeAt * 1000).toISOString()})` : "INACTIVE (stake under its minimum)"}`;
    print(`  ${p.address}: ${where}; ${money}`);
  }
  return { version: snap.version, proxies };
}

/** The operator's side: start or finish unstaking its proxy contract (the payments config's `proxyContract`). */
export async function unstakeCommand(file: string, step: "start" | "finish", deps: ProxyAdminDeps = {}): Promise<void> {
  const print = deps.print ?? console.log;
  const c = loadPaymentsConfig(file);
  const { ton, wallet } = await connectChain(c);
  const config = await ton.assertGenuineProxy(c.proxyContract, c.root);
  if (!config.owner.equals(wallet.address)) throw new Error(`only the proxy's operator (${config.owner.toString()}) unstakes; this wallet is ${wallet.address.toString()}`);
  const before = await ton.proxyState(c.proxyContract);
  if (step === "start" && before.unstakeAt) throw new Error(`proxy contract ${c.proxyContract.toString()} is unstaking already; finish from ${new Date(before.unstakeAt * 1000).toISOString()}`);
  if (step === "finish") {
    if (!before.unstakeAt) throw new Error(`proxy contract ${c.proxyContract.toString()} is not unstaking; run "cocoon proxy unstake start" first`);
    const wait = before.unstakeAt - Math.floor(Date.now() / 1000);
    if (wait > 0) throw new Error(`the unstake delay is not over: finish from ${new Date(before.unstakeAt * 1000).toISOString()} (in ${wait} s)`);
  }
  await confirmFundsMovement(c.network, `${step} unstaking proxy contract ${c.proxyContract.toString()}`, { yes: deps.yes });
  await wallet.sendBatch([{ to: c.proxyContract, value: PROXY_OP_VALUE, body: step === "start" ? startUnstakeBody() : finishUnstakeBody() }]);
  if (step === "start") {
    await waitFor(async () => (await ton.proxyState(c.proxyContract)).unstakeAt !== 0, deps.timeoutMs ?? APPLY_TIMEOUT_MS, "the unstake starting");
    const s = await ton.proxyState(c.proxyContract);
    print(`unstaking proxy contract ${c.proxyContract.toString()}: the stake of ${tonOf(s.stake)} can be taken back from ${new Date(s.unstakeAt * 1000).toISOString()} with "cocoon proxy unstake finish"`);
  } else {
    await waitFor(async () => (await ton.proxyState(c.proxyContract)).stake === 0n, deps.timeoutMs ?? APPLY_TIMEOUT_MS, "the stake returned");
    print(`unstaked proxy contract ${c.proxyContract.toString()}: ${tonOf(before.stake)} returned to ${wallet.address.toString()}`);
  }
}

/** Adds the registration subcommands under `cocoon proxy` (which also has --payments: either position works). */
export function registerProxyAdminCommands(proxy: Command): void {
  const help = "payments config JSON (network, endpoint, root, the wallet that signs)";
  const file = (cmd: Command, whose: string): string => {
    const o = cmd.optsWithGlobals() as { payments?: string };
    if (!o.payments) throw new Error(`"cocoon proxy ${cmd.name()}" needs --payments <file>: a payments config with ${whose} wallet`);
    return o.payments;
  };
  proxy
    .command("register")
    .description("root owner: register a staked proxy contract on the root with its public endpoints (re-run to update them)")
    .option("--payments <file>", help + " (the root owner's wallet)")
    .option("--proxy-contract <address>", "the proxy contract to register (default: the payments config's proxyContract)")
    .option("--clients <host:port>", "public address clients dial (the proxy's --client-port)")
    .option("--workers <host:port>", "public address workers dial (the proxy's --worker-port)")
    .option("--identity-key <hex>", "the proxy's Ed25519 identity key (default: its payout key)")
    .option("--image <sha256>", "also allow-list this proxy image digest on the root")
    .option("--key-attested", "the payout key was generated inside attested proxy code: the root approves it")
    .option("--yes", "do not ask for confirmation on mainnet")
    .action(async (o, cmd: Command) => {
      await registerProxyCommand(file(cmd, "the root owner's"), o, { yes: o.yes });
    });
  proxy
    .command("unregister")
    .description("root owner: remove a proxy from the root (clients and workers stop using it)")
    .option("--payments <file>", help + " (the root owner's wallet)")
    .option("--proxy-contract <address>", "the proxy contract to remove (default: the payments config's proxyContract)")
    .option("--yes", "do not ask for confirmation on mainnet")
    .action(async (o, cmd: Command) => {
      await unregisterProxyCommand(file(cmd, "the root owner's"), o, { yes: o.yes });
    });
  proxy
    .command("status")
    .description("the proxies registered on the root: endpoints, stake, whether active")
    .option("--payments <file>", help)
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const r = await proxyStatusCommand(file(cmd, "any"), o.json ? { print: () => {} } : {});
      if (o.json) console.log(JSON.stringify(r, null, 2));
    });
  proxy
    .command("unstake <step>")
    .description("proxy operator: 'start' unstaking the proxy contract, or 'finish' after the root's unstake delay")
    .option("--payments <file>", help + " (the proxy operator's wallet)")
    .option("--yes", "do not ask for confirmation on mainnet")
    .action(async (step: string, o, cmd: Command) => {
      if (step !== "start" && step !== "finish") throw new Error(`unstake takes "start" or "finish", got "${step}"`);
      await unstakeCommand(file(cmd, "the proxy operator's"), step, { yes: o.yes });
    });
}
