/**
 * Sets up the contracts of a development network on a chain with a faucet (the devnet's `cocoon chain`): wallets for
 * the root owner, the proxy operators, the workers and the client, funded from the faucet; the root with its
 * parameters, model prices and image allow-lists; each proxy contract with its stake (registered in the root); and
 * one client channel per proxy, the deposit split evenly between them (a client pays each proxy it uses from that
 * proxy's own channel). Each party's setup is ONE wallet transaction (messages from one wallet to one contract
 * arrive in order, so deploy + configure can travel together), and they run in parallel.
 */
import { randomBytes } from "node:crypto";
import { Address, toNano, type TonClient } from "@ton/ton";
import { ClientChannel, topUpBody } from "../chain/contracts/ClientChannel.js";
import { ProxyContract, addStakeBody } from "../chain/contracts/ProxyContract.js";
import {
  ImageKind, RootContract, registerProxyBody, setImageBody, setModelBody, ROOT_OP_VALUE,
  type ModelPrice, type RootParams,
} from "../chain/contracts/RootContract.js";
import { beginCell } from "@ton/core";
import { requestFaucet } from "../chain/wallet.js";
import { ed25519Signer } from "../chain/vouchers.js";
import { globalIdFor, type NetworkName } from "../chain/network.js";
import { keyPairFromSeedHex } from "./ton.js";
import { WalletService } from "../chain/wallet.js";

/** Development parameters: 10 % proxy fee, 30 s close delay (3 redeem timers of the devnet: the proxy always redeems in time). */
export const DEVNET_PARAMS: RootParams = {
  proxyFeeBps: 1000,
  clientCloseDelay: 30,
  proxyUnstakeDelay: 60,
  minProxyStake: toNano("10"),
  minClientDeposit: toNano("1"),
};
/** Development prices, high enough that money moves visibly: 0.00005 TON per prompt token, 0.0001 per completion token. */
export const DEVNET_PRICE: ModelPrice = { promptPrice: 50_000n, completionPrice: 100_000n };

export interface BootstrapOptions {
  client: TonClient;
  /** JSON-RPC endpoint of the chain, for the faucet. */
  endpoint: string;
  network?: NetworkName;
  /** Models to price: name -> weights sha256 (hex). */
  models: Record<string, string>;
  price?: ModelPrice;
  params?: RootParams;
  /** Image digests (hex sha256) to allow for workers and proxies. */
  images?: string[];
  workers: number;
  /** Total client deposit, split evenly over the proxies' channels. */
  deposit?: bigint;
  /** Proxies to set up (default 1), each with its own operator wallet, staked contract and client channel. */
  proxies?: number;
  /** Endpoint string registered for each proxy (src/chain/proxy-endpoints.ts); default "127.0.0.1:11002". */
  proxyEndpoints?: string[];
  /**
   * Whether the root approves the proxy's payout key as attested (then the stake backs payout vouchers while the
   * proxy unstakes). Default false: here the payout key is the operator wallet's own key, which the operator
   * could sign vouchers to itself with, so the stake must not back them.
   */
  keyAttested?: boolean;
  /** Progress callback. */
  progress?: (line: string) => void;
}

/** One proxy of the devnet: its contract, the client's channel with it, its operator. */
export interface BootstrapProxy {
  contract: Address;
  channel: Address;
  /** Development only; also signs the proxy's payout vouchers. */
  operatorSeed: string;
  operator: Address;
}

export interface BootstrapResult {
  network: NetworkName;
  root: Address;
  /** The first proxy's contract and channel (`proxies[0]`). */
  proxyContract: Address;
  channel: Address;
  proxies: BootstrapProxy[];
  params: RootParams;
  /** Wallet seeds (hex): development only. The operator's seed (the first proxy's) also signs payout vouchers. */
  seeds: { owner: string; operator: string; client: string; workers: string[] };
  wallets: { owner: Address; operator: Address; client: Address; workers: Address[] };
}

const FUND = { owner: toNano("10"), operatorExtra: toNano("10"), worker: toNano("5"), clientExtra: toNano("10") };
/** Value that pays for deploying the root (stays on it for storage). */
const ROOT_DEPLOY_VALUE = toNano("1");

export async function bootstrapDevnetContracts(o: BootstrapOptions): Promise<BootstrapResult> {
  const network = o.network ?? "devnet";
  const params = o.params ?? DEVNET_PARAMS;
  const price = o.price ?? DEVNET_PRICE;
  const deposit = o.deposit ?? toNano("100");
  const nProxies = o.proxies ?? 1;
  if (!Number.isInteger(nProxies) || nProxies < 1) throw new Error(`proxies must be a positive integer, got ${nProxies}`);
  const perChannel = deposit / BigInt(nProxies);
  if (perChannel < params.minClientDeposit) throw new Error(`a deposit of ${deposit} nanoTON split over ${nProxies} channels is under the root's minimum deposit per channel`);
  const say = o.progress ?? (() => {});
  const seed = () => randomBytes(32).toString("hex");
  const seeds = { owner: seed(), operators: Array.from({ length: nProxies }, seed), client: seed(), workers: Array.from({ length: o.workers }, seed) };
  const wallet = (s: string) => new WalletService(o.client, keyPairFromSeedHex(s), network);
  const owner = wallet(seeds.owner);
  const operators = seeds.operators.map(wallet);
  const clientWallet = wallet(seeds.client);
  const workers = seeds.workers.map(wallet);

  await Promise.all([
    requestFaucet(o.endpoint, owner.address, FUND.owner),
    ...operators.map((op) => requestFaucet(o.endpoint, op.address, params.minProxyStake + FUND.operatorExtra)),
    requestFaucet(o.endpoint, clientWallet.address, deposit + FUND.clientExtra),
    ...workers.map((w) => requestFaucet(o.endpoint, w.address, FUND.worker)),
  ]);
  say(`funded ${2 + operators.length + workers.length} wallets from the faucet`);

  const globalId = globalIdFor(network);
  const root = RootContract.createFromConfig({ owner: owner.address, params, globalId });
  const nonce = BigInt(Date.now());
  const proxies = operators.map((operator, i) => {
    const registration = { owner: operator.address, minStake: params.minProxyStake, unstakeDelay: params.proxyUnstakeDelay };
    const payoutKey = ed25519Signer(operator.seed).publicKey;
    const proxy = ProxyContract.createFromConfig({ ...registration, root: root.address, signingKey: payoutKey, globalId });
    const channel = ClientChannel.createFromConfig({
      client: clientWallet.address, clientKey: ed25519Signer(clientWallet.seed).publicKey, proxyOperator: operator.address,
      proxyVault: proxy.address, closeDelay: params.clientCloseDelay, nonce: nonce + BigInt(i), globalId,
    });
    if (!RootContract.proxyAddress(root.address, globalId, registration, payoutKey).equals(proxy.address)) {
      throw new Error("internal error: the root would register the proxy under another address than the one deployed");
    }
    return { operator, registration, payoutKey, proxy, channel, endpoint: o.proxyEndpoints?.[i] ?? "127.0.0.1:11002" };
  });

  const rootMessages = [
    { to: root.address, value: ROOT_DEPLOY_VALUE, init: root.init!, body: beginCell().endCell() },
    ...Object.values(o.models).map((digest) => ({ to: root.address, value: ROOT_OP_VALUE, body: setModelBody(Buffer.from(digest, "hex"), price) })),
    ...(o.images ?? []).flatMap((img) => [ImageKind.WORKER, ImageKind.PROXY].map((k) => ({ to: root.address, value: ROOT_OP_VALUE, body: setImageBody(k, Buffer.from(img, "hex"), true) }))),
    // the root computes each proxy's address from its config: it is `p.proxy.address` (checked above)
    ...proxies.map((p) => ({
      to: root.address, value: ROOT_OP_VALUE,
      body: registerProxyBody(p.registration, { signingKey: p.payoutKey, identityKey: p.operator.publicKey, endpoint: p.endpoint }, o.keyAttested ?? false),
    })),
  ].map((m) => ({ ...m, bounce: false }));
  await Promise.all([
    owner.sendBatch(rootMessages),
    ...proxies.map((p) => p.operator.sendBatch([{ to: p.proxy.address, value: params.minProxyStake + toNano("1"), init: p.proxy.init!, body: addStakeBody() }])),
    clientWallet.sendBatch(proxies.map((p) => ({ to: p.channel.address, value: perChannel, init: p.channel.init!, body: topUpBody() }))),
  ]);
  const deployed: Array<[string, Address]> = [["root", root.address], ...proxies.flatMap((p, i): Array<[string, Address]> => [[`proxy contract ${i + 1}`, p.proxy.address], [`client channel ${i + 1}`, p.channel.address]])];
  for (const [what, a] of deployed) {
    if (!(await o.client.isContractDeployed(a))) throw new Error(`the ${what} at ${a.toString()} did not deploy; check the chain's log`);
  }
  say(`deployed root ${root.address.toString()}, ${proxies.map((p, i) => `proxy contract ${i + 1} ${p.proxy.address.toString()} (client channel ${p.channel.address.toString()})`).join(", ")}`);
  const first = proxies[0]!;
  return {
    network, root: root.address, proxyContract: first.proxy.address, channel: first.channel.address, params,
    proxies: proxies.map((p, i) => ({ contract: p.proxy.address, channel: p.channel.address, operatorSeed: seeds.operators[i]!, operator: p.operator.address })),
    seeds: { owner: seeds.owner, operator: seeds.operators[0]!, client: seeds.client, workers: seeds.workers },
    wallets: { owner: owner.address, operator: first.operator.address, client: clientWallet.address, workers: workers.map((w) => w.address) },
  };
}
