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
import type { Address } from "@ton/core";
import { ChannelStatus } from "../chain/contracts/ClientChannel.js";

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

/**
 * Ledger file for a role's payments with one proxy: the configured file for the configured proxy contract, a
 * sibling named after the contract for any other (each proxy's money is booked apart: receipts, vouchers and
 * settlements of one proxy never mix with another's).
 */
export function ledgerPathFor(c: PaymentsConfig, proxy: Address): string {
  if (proxy.equals(c.proxyContract) || c.ledger === ":memory:") return c.ledger;
  const tag = proxy.hash.toString("hex").slice(0, 16);
  return /\.sqlite$/i.test(c.ledger) ? c.ledger.replace(/\.sqlite$/i, `.${tag}.sqlite`) : `${c.ledger}.${tag}`;
}

/** The same payments config, for another proxy contract (its own ledger file). */
export function configForProxy(c: PaymentsConfig, proxy: Address): PaymentsConfig {
  return { ...c, proxyContract: proxy, ledger: ledgerPathFor(c, proxy) };
}

/**
 * A worker's payees, one per proxy it serves (each proxy pays from its own contract, with its own key): started on
 * demand, each after checking that proxy's contract is genuine under the configured root. A proxy whose payee cannot
 * start is not served (`get` returns undefined and `problems` says why).
 */
export class PayeesByProxy {
  private readonly payees = new Map<string, WorkerPayee>();
  readonly problems = new Map<string, string>();
  constructor(private readonly c: PaymentsConfig, private readonly digests: Record<string, string>, private readonly log?: Logger) {}

  /** Every payee, one per proxy contract this worker is paid by. */
  all(): WorkerPayee[] {
    return [...this.payees.values()];
  }

  get(contractRaw: string): WorkerPayee | undefined {
    return this.payees.get(contractRaw);
  }

  /** Starts the payees of these proxy contracts that are not running yet. */
  async ensure(contracts: Address[]): Promise<void> {
    for (const a of contracts) {
      const key = a.toRawString();
      if (this.payees.has(key)) continue;
      try {
        this.payees.set(key, await startWorkerPayments(configForProxy(this.c, a), this.digests, this.log));
        this.problems.delete(key);
      } catch (e) {
        const why = (e as Error).message;
        if (this.problems.get(key) !== why) this.log?.warn(`not serving proxy ${a.toString()}: ${why}`);
        this.problems.set(key, why);
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.payees.values()) await p.close();
  }
}

/**
 * A client's payers, one per proxy it can pay: for each open channel the payments config lists, the proxy contract
 * the channel pays into (read on chain) gets a payer on that channel. A proxy with no open channel gets none (the
 * client does not use it while payments are on; `cocoon client deposit --proxy-contract` opens one).
 */
export class PayersByProxy {
  private readonly payers = new Map<string, ClientPayer>();
  /** Proxy contract (raw) -> the channel paying it. */
  private readonly channels = new Map<string, Address>();
  constructor(private readonly c: PaymentsConfig, private readonly clientId: string, private readonly log?: Logger) {}

  get(contractRaw: string): ClientPayer | undefined {
    return this.payers.get(contractRaw);
  }

  /** Which proxy each listed open channel pays (newest channel per proxy wins). */
  async load(): Promise<void> {
    const { ton } = await connectChain(this.c);
    for (const ch of this.c.channels) {
      try {
        const view = await ton.channel(ch);
        if (view.state.status !== ChannelStatus.OPEN) continue;
        this.channels.set(view.config.proxyVault.toRawString(), ch);
      } catch (e) {
        this.log?.warn(`skipping channel ${ch.toString()}: ${(e as Error).message}`);
      }
    }
  }

  /** Starts the payers of these proxy contracts that have an open channel and no payer yet. */
  async ensure(contracts: Address[]): Promise<void> {
    for (const a of contracts) {
      const key = a.toRawString();
      const channel = this.channels.get(key);
      if (this.payers.has(key) || !channel) continue;
      try {
        this.payers.set(key, await startClientPayments({ ...configForProxy(this.c, a), channel }, this.clientId, this.log));
      } catch (e) {
        this.log?.warn(`not using proxy ${a.toString()}: ${(e as Error).message}`);
      }
    }
  }

  async close(): Promise<void> {
    for (const p of this.payers.values()) await p.close();
  }
}
