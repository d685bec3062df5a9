/**
 * Builds each role's payment hook from its payments config: opens the ledger, connects to the chain, reads the
 * root's parameters and prices, checks what can be checked at start, and hands back the Meter / Payer / Payee.
 * Every contract a role relies on is checked to be GENUINE first (its address is the one the pinned code and the
 * standard initial data for its config give, on this network, under this root): a contract is never trusted for
 * what its getters say. Vouchers are bound to the network's global id (`TonAccess.globalId`).
 */
import { Ledger } from "./ledger.js";
import { connectChain, nanoOr, type PaymentsConfig } from "./config.js";
import { PriceBook } from "./pricing.js";
import { ProxyMeter } from "./proxy-meter.js";
import { WorkerPayee } from "./worker-payee.js";
import { ClientPayer } from "./client-payer.js";
import { ed25519Signer } from "../chain/vouchers.js";
import type { Logger } from "../util/log.js";
import type { TonAccess } from "./ton.js";

async function priceBook(ton: TonAccess, c: PaymentsConfig, extraDigests: Record<string, string> = {}): Promise<{ book: PriceBook; closeDelay: number }> {
  let params, prices;
  try {
    [params, prices] = await Promise.all([ton.rootParams(c.root), ton.rootPrices(c.root)]);
  } catch (e) {
    throw new Error(`cannot read the root contract ${c.root.toString()} on ${c.network} (${(e as Error).message}); check --payments (endpoint, root) and that the chain runs`);
  }
  return { book: PriceBook.fromRoot(params.proxyFeeBps, prices, { ...extraDigests, ...c.models }), closeDelay: params.clientCloseDelay };
}

/** The proxy contract must be genuine and serve under the configured root (else: a clear error naming why). */
async function genuineProxy(ton: TonAccess, c: PaymentsConfig): Promise<void> {
  try {
    await ton.assertGenuineProxy(c.proxyContract, c.root);
  } catch (e) {
    throw new Error(`refusing proxy contract ${c.proxyContract.toString()} from ${c.file ?? "the payments config"}: ${(e as Error).message}`);
  }
}

export async function startProxyPayments(c: PaymentsConfig, log?: Logger): Promise<ProxyMeter> {
  const { ton, wallet } = await connectChain(c);
  const { book, closeDelay } = await priceBook(ton, c);
  await genuineProxy(ton, c);
  const ledger = Ledger.open(c.ledger);
  try {
    return await ProxyMeter.start({
      ton, wallet, proxyContract: c.proxyContract, root: c.root, prices: book, ledger, payoutSigner: ed25519Signer(wallet.seed),
      minCloseDelay: closeDelay, log, closeLedger: true,
      ...(c.maxUnsignedNano !== undefined ? { maxUnsignedNano: c.maxUnsignedNano } : {}),
      redeemThreshold: c.batch.redeemThreshold !== undefined ? BigInt(c.batch.redeemThreshold) : undefined,
      redeemIntervalMs: c.batch.redeemIntervalMs,
      payoutThreshold: c.batch.payoutThreshold !== undefined ? BigInt(c.batch.payoutThreshold) : undefined,
      payoutIntervalMs: c.batch.payoutIntervalMs,
    });
  } catch (e) {
    ledger.close();
    throw e;
  }
}

/** `modelDigests`: what the worker's backend serves (name -> weights sha256), priced from the root. */
export async function startWorkerPayments(c: PaymentsConfig, modelDigests: Record<string, string>, log?: Logger): Promise<WorkerPayee> {
  const { ton, wallet } = await connectChain(c);
  const { book } = await priceBook(ton, c, modelDigests);
  await genuineProxy(ton, c); // its payout key and its stake are what the worker's vouchers rest on
  const ledger = Ledger.open(c.ledger);
  try {
    return await WorkerPayee.start({
      ton, wallet, proxyContract: c.proxyContract, ledger, prices: book, log, closeLedger: true,
      claimThreshold: c.batch.claimThreshold !== undefined ? nanoOr(c.batch.claimThreshold, 0n) : undefined,
      claimIntervalMs: c.batch.claimIntervalMs,
    });
  } catch (e) {
    ledger.close();
    throw e;
  }
}

export async function startClientPayments(c: PaymentsConfig, clientId: string, log?: Logger): Promise<ClientPayer> {
  if (!c.channel) throw new Error(`the payments config${c.file ? ` ${c.file}` : ""} names no "channel"; a client needs its payment channel (open one with "cocoon client deposit")`);
  const { ton, wallet } = await connectChain(c);
  const { book } = await priceBook(ton, c);
  const view = await ton.channel(c.channel);
  await ton.assertGenuineChannel(c.channel, view.config).catch((e: Error) => {
    throw new Error(`refusing channel ${c.channel!.toString()} from ${c.file ?? "the payments config"}: ${e.message}`);
  });
  await genuineProxy(ton, c);
  const signer = ed25519Signer(wallet.seed);
  if (!view.config.clientKey.equals(signer.publicKey)) {
    throw new Error(`channel ${c.channel.toString()} is signed for by another key than this wallet's; use the wallet that opened it`);
  }
  if (!view.config.proxyVault.equals(c.proxyContract)) {
    throw new Error(`channel ${c.channel.toString()} pays proxy contract ${view.config.proxyVault.toString()}, the config names ${c.proxyContract.toString()}`);
  }
  return new ClientPayer({ channel: c.channel, proxyContract: c.proxyContract, signer, ledger: Ledger.open(c.ledger), clientId, ton, globalId: ton.globalId, prices: book, log, closeLedger: true });
}
