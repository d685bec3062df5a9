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
import { ClientPayer, type ClientPayerOptions } from "./client-payer.js";
import { ChannelPayer } from "./channel-payer.js";
import { ClientChannels, DEFAULT_CHANNEL_DEPOSIT, type ChannelFunding } from "./client-channels.js";
import { ed25519Signer } from "../chain/vouchers.js";
import type { Logger } from "../util/log.js";
import type { TonAccess } from "./ton.js";
import { Address } from "@ton/core";

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

export async function startClientPayments(c: PaymentsConfig, clientId: string, log?: Logger, hooks: Pick<ClientPayerOptions, "lowFunds" | "funding"> = {}): Promise<ClientPayer> {
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
  return new ClientPayer({ channel: c.channel, proxyContract: c.proxyContract, signer, ledger: Ledger.open(c.ledger), clientId, ton, globalId: ton.globalId, prices: book, log, closeLedger: true, ...hooks });
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
 * the channel pays into (read on chain) gets a payer on that channel. With a deposit budget (`funding.maxDeposit` >
 * 0), a proxy the client links to with no channel gets one opened on demand, and every channel is topped up when it
 * runs low (client-channels.ts); meanwhile its payer says why it cannot pay and the client uses other proxies. With
 * no budget, a proxy without an open channel gets no payer (the client does not use it while payments are on).
 */
export class PayersByProxy {
  private readonly payers = new Map<string, ChannelPayer>();
  private readonly starting = new Map<string, Promise<void>>();
  /** Why a proxy's payer could not start (its channel is open but refused, e.g. not genuine). */
  private readonly problems = new Map<string, string>();
  private channels?: ClientChannels;
  constructor(private readonly c: PaymentsConfig, private readonly clientId: string, private readonly log?: Logger, private readonly funding?: ChannelFunding) {}

  /** Whether channels are opened and topped up by this client (a budget was given). */
  get onDemand(): boolean {
    return (this.funding?.maxDeposit ?? 0n) > 0n;
  }

  /** The payer of a proxy; with on-demand channels, asking for one starts opening its channel. */
  get(contractRaw: string): ChannelPayer | undefined {
    const have = this.payers.get(contractRaw);
    if (have || !this.onDemand || !this.channels) return have;
    const proxy = Address.parseRaw(contractRaw);
    const p = this.payerFor(proxy);
    const known = this.channels.channelWith(proxy);
    if (known) void this.startPayer(proxy, known);
    else void this.channels.ensureChannel(proxy);
    return p;
  }

  /** Which proxy each listed open channel pays (newest channel per proxy wins), and the budget used. */
  async load(): Promise<void> {
    const { ton, wallet } = await connectChain(this.c);
    this.channels = new ClientChannels({ config: this.c, ton, wallet, funding: this.funding ?? { channelDeposit: DEFAULT_CHANNEL_DEPOSIT, maxDeposit: 0n },
      onOpened: (proxy, channel) => void this.startPayer(proxy, channel), ...(this.log ? { log: this.log } : {}) });
    await this.channels.load();
  }

  /** Funding per proxy (tests, status). */
  get funder(): ClientChannels | undefined {
    return this.channels;
  }

  private payerFor(proxy: Address): ChannelPayer {
    const key = proxy.toRawString();
    let p = this.payers.get(key);
    if (!p) {
      const ch = this.channels!;
      p = new ChannelPayer(proxy.toString(), () => {
        const problem = this.problems.get(key);
        if (problem) return `its payment channel cannot be used: ${problem}`;
        const s = ch.status(proxy);
        return s.state === "opening" ? `its payment channel is being opened (deposit ${s.channelDeposit} nanoTON)` : s.lastError ? `no payment channel: ${String(s.lastError)}` : "no payment channel yet";
      }, () => ch.status(proxy), () => ch.stopProxy(proxy));
      this.payers.set(key, p);
    }
    return p;
  }

  private startPayer(proxy: Address, channel: Address): Promise<void> {
    const key = proxy.toRawString();
    const p = this.payerFor(proxy);
    if (p.payer) return Promise.resolve();
    let run = this.starting.get(key);
    if (!run) {
      const funds = this.channels!;
      const hooks = this.onDemand
        ? {
          lowFunds: {
            below: funds.topUpBelow,
            // The payer may say so while it starts, before it is attached: the next chain read asks again.
            onLow: () => {
              const payer = p.payer;
              if (payer) void funds.topUpIfLow(proxy, () => payer.availableNow());
            },
          },
          funding: () => funds.status(proxy),
        }
        : {};
      run = startClientPayments({ ...configForProxy(this.c, proxy), channel }, this.clientId, this.log, hooks)
        .then((payer) => {
          this.problems.delete(key);
          return p.attach(payer);
        })
        .catch((e: Error) => {
          this.problems.set(key, e.message);
          this.log?.warn(`not using proxy ${proxy.toString()}: ${e.message}`);
        })
        .finally(() => this.starting.delete(key));
      this.starting.set(key, run);
    }
    return run;
  }

  /** Starts the payers of these proxy contracts that have an open channel and no payer yet. */
  async ensure(contracts: Address[]): Promise<void> {
    for (const a of contracts) {
      const channel = this.channels?.channelWith(a);
      if (channel) await this.startPayer(a, channel);
    }
  }

  /** Waits (at most `ms`) for the channels being opened now and their payers. */
  async settled(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    await this.channels?.settled(ms);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.starting.values()]), new Promise((r) => (t = setTimeout(r, Math.max(0, deadline - Date.now()))))]);
    clearTimeout(t);
  }

  async close(): Promise<void> {
    this.channels?.stop();
    for (const p of this.payers.values()) await p.close();
  }
}
