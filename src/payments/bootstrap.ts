/**
 * Sets up the contracts of a development network on a chain with a faucet (the devnet's `cocoon chain`): wallets for
 * the root owner, the proxy operator, the workers and the client, funded from the faucet; the root with its
 * parameters, model prices and image allow-lists; the proxy contract with its stake (registered in the root); and
 * the client's channel with a first deposit. Each party's setup is ONE wallet transaction (messages from one wallet
 * to one contract arrive in order, so deploy + configure can travel together), and the three run in parallel.
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
  deposit?: bigint;
  proxyEndpoint?: string;
  /**
   * Whether the root approves the proxy's payout key as attested (then the stake backs payout vouchers while the
   * proxy unstakes). Default false: here the payout key is the operator wallet's own key, which the operator
   * could sign vouchers to itself with, so the stake must not back them.
   */
  keyAttested?: boolean;
  /** Progress callback. */
  progress?: (line: string) => void;
}

export interface BootstrapResult {
  network: NetworkName;
  root: Address;
  proxyContract: Address;
  channel: Address;
  params: RootParams;
  /** Wallet seeds (hex): development only. The operator's seed also signs payout vouchers. */
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
  const say = o.progress ?? (() => {});
  const seed = () => randomBytes(32).toString("hex");
  const seeds = { owner: seed(), operator: seed(), client: seed(), workers: Array.from({ length: o.workers }, seed) };
  const wallet = (s: string) => new WalletService(o.client, keyPairFromSeedHex(s), network);
  const owner = wallet(seeds.owner);
  const operator = wallet(seeds.operator);
  const clientWallet = wallet(seeds.client);
  const workers = seeds.workers.map(wallet);

  await Promise.all([
    requestFaucet(o.endpoint, owner.address, FUND.owner),
    requestFaucet(o.endpoint, operator.address, params.minProxyStake + FUND.operatorExtra),
    requestFaucet(o.endpoint, clientWallet.address, deposit + FUND.clientExtra),
    ...workers.map((w) => requestFaucet(o.endpoint, w.address, FUND.worker)),
  ]);
  say(`funded ${3 + workers.length} wallets from the faucet`);

  const globalId = globalIdFor(network);
  const root = RootContract.createFromConfig({ owner: owner.address, params, globalId });
  const registration = { owner: operator.address, minStake: params.minProxyStake, unstakeDelay: params.proxyUnstakeDelay };
  const payoutKey = ed25519Signer(operator.seed).publicKey;
  const proxy = ProxyContract.createFromConfig({ ...registration, root: root.address, signingKey: payoutKey, globalId });
  const channel = ClientChannel.createFromConfig({
    client: clientWallet.address, clientKey: ed25519Signer(clientWallet.seed).publicKey, proxyOperator: operator.address,
    proxyVault: proxy.address, closeDelay: params.clientCloseDelay, nonce: BigInt(Date.now()), globalId,
  });

  const rootMessages = [
    { to: root.address, value: ROOT_DEPLOY_VALUE, init: root.init!, body: beginCell().endCell() },
    ...Object.values(o.models).map((digest) => ({ to: root.address, value: ROOT_OP_VALUE, body: setModelBody(Buffer.from(digest, "hex"), price) })),
    ...(o.images ?? []).flatMap((img) => [ImageKind.WORKER, ImageKind.PROXY].map((k) => ({ to: root.address, value: ROOT_OP_VALUE, body: setImageBody(k, Buffer.from(img, "hex"), true) }))),
    {
      // the root computes the proxy's address from this config: it is `proxy.address` (checked below)
      to: root.address, value: ROOT_OP_VALUE,
      body: registerProxyBody(registration, { signingKey: payoutKey, identityKey: operator.publicKey, endpoint: o.proxyEndpoint ?? "127.0.0.1:11002" }, o.keyAttested ?? false),
    },
  ].map((m) => ({ ...m, bounce: false }));
  await Promise.all([
    owner.sendBatch(rootMessages),
    operator.sendBatch([{ to: proxy.address, value: params.minProxyStake + toNano("1"), init: proxy.init!, body: addStakeBody() }]),
    clientWallet.sendBatch([{ to: channel.address, value: deposit, init: channel.init!, body: topUpBody() }]),
  ]);
  for (const [what, a] of [["root", root.address], ["proxy contract", proxy.address], ["client channel", channel.address]] as const) {
    if (!(await o.client.isContractDeployed(a))) throw new Error(`the ${what} at ${a.toString()} did not deploy; check the chain's log`);
  }
  if (!RootContract.proxyAddress(root.address, globalId, registration, payoutKey).equals(proxy.address)) {
    throw new Error("internal error: the root would register the proxy under another address than the one deployed");
  }
  say(`deployed root ${root.address.toString()}, proxy contract ${proxy.address.toString()}, client channel ${channel.address.toString()}`);
  return {
    network, root: root.address, proxyContract: proxy.address, channel: channel.address, params, seeds,
    wallets: { owner: owner.address, operator: operator.address, client: clientWallet.address, workers: workers.map((w) => w.address) },
  };
}
