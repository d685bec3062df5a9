/**
 * The client's money across proxies: opens a channel with a proxy it has none with, and tops a channel up when what
 * it can still pay runs low, from the client's own wallet, within a budget the operator set (docs/discovery.md §4).
 *
 *  - Opening: a channel opened here has a DETERMINISTIC nonce (the k-th on-demand channel with a proxy has nonce k),
 *    so its address follows from its init data. Before deploying, the client looks at those addresses: one already
 *    deployed and open is adopted (a crash between deploy and record leaves exactly that), one closing or closed is
 *    skipped. The channel is recorded in the payments file (`channels`) once its deposit shows on chain.
 *  - Budget (`maxDeposit`): the total `deposited` of this client's channels that are not closed (opened by hand or
 *    here, read on chain, so a restart does not reset it), plus what is being sent, never exceeds it. Spent money
 *    stays counted until its channel is closed: the budget caps what this client moves out of its wallet by itself.
 *  - Top-up: when a channel can pay less than `topUpBelow`, `channelDeposit` more goes in (less if the budget has less
 *    left). One operation per proxy at a time: callers that arrive while one runs share it. An operation is done only
 *    once the chain shows the deposit, so nothing tops up twice for one shortfall. A failed one is logged and retried
 *    with back-off (RETRY_MIN_MS doubling to RETRY_MAX_MS); a request never waits for it (it goes through another
 *    proxy, or gets a clear 402 / 503).
 */
import { fromNano, toNano, type Address } from "@ton/core";
import { ChannelStatus, ClientChannel, topUpBody } from "../chain/contracts/ClientChannel.js";
import { ed25519Signer } from "../chain/vouchers.js";
import type { WalletService } from "../chain/wallet.js";
import type { NetworkName } from "../chain/network.js";
import { recordChannelInFile, type PaymentsConfig } from "./config.js";
import type { TonAccess } from "./ton.js";
import { silentLogger, type Logger } from "../util/log.js";

/**
 * Default deposit of a channel opened on demand, and of each top-up: 1 TON pays 10,000 completion tokens at the
 * devnet's prices, and is what one proxy that takes the deposit and never serves can hold up (until the close delay
 * returns it). It is also the root's usual minimum deposit; a root asking more is honoured (`minClientDeposit`).
 */
export const DEFAULT_CHANNEL_DEPOSIT = toNano("1");
/**
 * Default budget: room for the channels of the DEFAULT_MAX_LINKS (3) proxies a client uses plus seven top-ups. On
 * mainnet there is none: a client moves real money by itself only when its operator says how much (--max-deposit).
 */
export const DEFAULT_MAX_DEPOSIT = toNano("10");
/** Fees a wallet must hold beyond the deposit (the wallet transaction and the channel's deploy). */
export const FUNDING_FEE_MARGIN = toNano("0.05");
export const RETRY_MIN_MS = 2_000;
export const RETRY_MAX_MS = 5 * 60_000;
/** How long a sent deposit may take to show on the channel before the operation counts as failed (and is retried). */
export const CONFIRM_MS = 60_000;
/** Most on-demand nonces looked at per proxy (each one a closed or closing channel of this client with it). */
const MAX_NONCES = 256;
const POLL_MS = 250;

export function defaultMaxDeposit(network: NetworkName): bigint {
  return network === "mainnet" ? 0n : DEFAULT_MAX_DEPOSIT;
}

export interface ChannelFunding {
  /** Deposit of a channel opened on demand, and size of each top-up (nanoTON). */
  channelDeposit: bigint;
  /** Most this client keeps deposited in its channels that are not closed (nanoTON); 0: it never moves money itself. */
  maxDeposit: bigint;
  /** Top up when a channel can pay less than this (default: a quarter of channelDeposit). */
  topUpBelow?: bigint;
}

/** Where a proxy's channel stands, for /status. */
export type FundingState = "none" | "opening" | "open" | "topping-up" | "retrying" | "no-budget" | "failed";

/** One proxy's funding on /status (paymentsByProxy[…].funding); amounts in nanoTON, as decimal strings. */
export interface FundingStatus {
  state: FundingState;
  channelDeposit: string;
  topUpBelow: string;
  topUps: number;
  /** Failed attempts in a row (reset by one that goes through). */
  failures: number;
  /** The client's whole budget (the same for every proxy). */
  budget: { max: string; used: string; left: string };
  lastError?: string;
  retryAt?: string;
}

interface ProxyFunding {
  proxy: Address;
  state: FundingState;
  channel?: Address;
  /** The operation in flight (open or top-up): later callers share it. */
  running?: Promise<Address | undefined>;
  topUps: number;
  failures: number;
  retryAt?: number;
  retryTimer?: NodeJS.Timeout;
  lastError?: string;
  /** Its payer closed: nothing more is sent for it. */
  stopped?: boolean;
}

export interface ClientChannelsOptions {
  config: PaymentsConfig;
  ton: TonAccess;
  wallet: WalletService;
  funding: ChannelFunding;
  log?: Logger;
  retryMinMs?: number;
  retryMaxMs?: number;
  confirmMs?: number;
  /** A channel was opened or adopted for a proxy (also after a retry): its payer can start. */
  onOpened?: (proxy: Address, channel: Address) => void;
  /** Tests: runs after a deploy is confirmed and before it is recorded (a throw there is a crash in between). */
  afterDeploy?: (channel: Address) => void | Promise<void>;
}

/** What a channel can still pay, read afresh (undefined when unknown): the payer of the channel answers it. */
export type AvailableFn = () => Promise<bigint | undefined>;

export class ClientChannels {
  private readonly log: Logger;
  private readonly byProxy = new Map<string, ProxyFunding>();
  /** Every channel of this client seen on chain (raw address -> its deposit, and whether it is closed). */
  private readonly seen = new Map<string, { address: Address; deposited: bigint; closed: boolean }>();
  /** Deposits sent and not yet seen on chain (counted against the budget meanwhile). */
  private pendingNano = 0n;
  private stopped = false;
  readonly topUpBelow: bigint;

  constructor(private readonly o: ClientChannelsOptions) {
    this.log = o.log ?? silentLogger;
    if (o.funding.channelDeposit <= 0n) throw new Error("the channel deposit must be positive");
    if (o.funding.maxDeposit < 0n) throw new Error("the deposit budget must not be negative");
    this.topUpBelow = o.funding.topUpBelow ?? o.funding.channelDeposit / 4n;
  }

  get funding(): ChannelFunding {
    return this.o.funding;
  }

  private entry(proxy: Address): ProxyFunding {
    const key = proxy.toRawString();
    let e = this.byProxy.get(key);
    if (!e) this.byProxy.set(key, (e = { proxy, state: "none", topUps: 0, failures: 0 }));
    return e;
  }

  /** Reads every listed channel: which proxy each open one pays (newest listed wins), and the budget used. */
  async load(): Promise<void> {
    for (const ch of this.o.config.channels) {
      try {
        const view = await this.o.ton.channel(ch);
        this.note(ch, view.state.deposited, view.state.status);
        if (view.state.status === ChannelStatus.OPEN) {
          const e = this.entry(view.config.proxyVault);
          e.channel = ch;
          e.state = "open";
        }
      } catch (e) {
        this.log.warn(`skipping channel ${ch.toString()}: ${(e as Error).message}`);
      }
    }
  }

  private note(channel: Address, deposited: bigint, status: number): void {
    this.seen.set(channel.toRawString(), { address: channel, deposited, closed: status === ChannelStatus.CLOSED });
  }

  /** The open channel this client pays `proxy` from, if it has one. */
  channelWith(proxy: Address): Address | undefined {
    return this.byProxy.get(proxy.toRawString())?.channel;
  }

  /** Budget: what the channels not closed hold as deposited, what is on its way, and what is left. */
  budget(): { max: bigint; used: bigint; left: bigint } {
    let used = this.pendingNano;
    for (const s of this.seen.values()) if (!s.closed) used += s.deposited;
    const left = this.o.funding.maxDeposit - used;
    return { max: this.o.funding.maxDeposit, used, left: left > 0n ? left : 0n };
  }

  /** Re-reads the deposits of the channels not closed (the budget is counted from the chain, not from memory). */
  private async rereadBudget(): Promise<void> {
    for (const s of this.seen.values()) {
      if (s.closed) continue;
      const st = await this.o.ton.channelState(s.address);
      s.deposited = st.deposited;
      s.closed = st.status === ChannelStatus.CLOSED;
    }
  }

  /**
   * The channel with `proxy`: the open one known, else one opened here before and not recorded (adopted), else a new
   * one with `channelDeposit`. Resolves undefined, with the reason in the status and the log, when it cannot (budget,
   * wallet, chain); it is then retried with back-off. Callers that arrive while it runs share it.
   */
  ensureChannel(proxy: Address): Promise<Address | undefined> {
    const e = this.entry(proxy);
    if (e.channel) return Promise.resolve(e.channel);
    return this.run(e, "opening", () => this.openNow(e), () => this.ensureChannel(proxy));
  }

  /**
   * Tops up the channel with `proxy` when `available` (read afresh) is under the threshold. At most one operation per
   * proxy runs at a time; a call meanwhile shares it. Resolves once the deposit shows on chain (or it failed: then a
   * retry is scheduled).
   */
  topUpIfLow(proxy: Address, available: AvailableFn): Promise<void> {
    const e = this.entry(proxy);
    if (!e.channel || this.stopped) return Promise.resolve();
    if (e.running) return e.running.then(() => undefined);
    // A retry is already scheduled after a failure: the back-off decides when, not the next answer.
    if (e.retryTimer) return Promise.resolve();
    return this.run(e, "topping-up", () => this.topUpNow(e, available), () => this.topUpIfLow(proxy, available)).then(() => undefined);
  }

  private run(e: ProxyFunding, state: FundingState, op: () => Promise<Address | undefined>, retry: () => Promise<unknown>): Promise<Address | undefined> {
    if (e.running) return e.running;
    if (this.stopped || e.stopped) return Promise.resolve(e.channel);
    const before = e.state;
    clearTimeout(e.retryTimer);
    e.retryTimer = undefined;
    e.state = state;
    const hadChannel = !!e.channel;
    e.running = op().then((r) => {
      if (!hadChannel && e.channel) this.o.onOpened?.(e.proxy, e.channel);
      e.failures = 0;
      e.lastError = undefined;
      e.retryAt = undefined;
      e.state = e.channel ? "open" : before;
      return r;
    }, (err: Error) => {
      const noBudget = err instanceof BudgetError;
      e.failures++;
      const delay = Math.min(this.o.retryMaxMs ?? RETRY_MAX_MS, (this.o.retryMinMs ?? RETRY_MIN_MS) * 2 ** Math.min(e.failures - 1, 20));
      e.state = noBudget ? "no-budget" : "retrying";
      // Said once per reason, not at every retry.
      if (e.lastError !== err.message) this.log.warn(`${state === "opening" ? "opening a channel with" : "topping up the channel with"} proxy ${e.proxy.toString()}: ${err.message}${noBudget ? "" : `; retrying in ${Math.round(delay / 1000)} s`}`);
      e.lastError = err.message;
      e.retryAt = Date.now() + delay;
      if (!this.stopped && !e.stopped) {
        e.retryTimer = setTimeout(() => {
          e.retryTimer = undefined;
          e.retryAt = undefined;
          void retry();
        }, delay);
        e.retryTimer.unref();
      }
      return e.channel;
    }).finally(() => (e.running = undefined));
    return e.running;
  }

  /** This client's channels with a proxy, by on-demand nonce k (the contract checked genuine under the root first). */
  private async channelsWith(proxy: Address): Promise<{ at: (nonce: bigint) => ClientChannel; minDeposit: bigint }> {
    const [proxyCfg, params] = await Promise.all([this.o.ton.assertGenuineProxy(proxy, this.o.config.root), this.o.ton.rootParams(this.o.config.root)]);
    const clientKey = ed25519Signer(this.o.wallet.seed).publicKey;
    return {
      minDeposit: params.minClientDeposit,
      at: (nonce) => ClientChannel.createFromConfig({
        client: this.o.wallet.address, clientKey, proxyOperator: proxyCfg.owner,
        proxyVault: proxy, closeDelay: params.clientCloseDelay, nonce, globalId: this.o.ton.globalId,
      }),
    };
  }

  private async openNow(e: ProxyFunding): Promise<Address | undefined> {
    const client = this.o.ton.client;
    const { at, minDeposit } = await this.channelsWith(e.proxy);
    // Deterministic addresses: adopt the one this client deployed and did not record, skip the closed ones.
    let fresh: ClientChannel | undefined;
    for (let k = 0n; k < BigInt(MAX_NONCES); k++) {
      const ch = at(k);
      if (!(await client.isContractDeployed(ch.address))) {
        fresh = ch;
        break;
      }
      const st = await this.o.ton.channelState(ch.address);
      this.note(ch.address, st.deposited, st.status);
      if (st.status === ChannelStatus.OPEN) {
        this.record(ch.address);
        e.channel = ch.address;
        this.log.info(`adopted channel ${ch.address.toString()} with proxy ${e.proxy.toString()} (deployed earlier, deposited ${tonText(st.deposited)}); recorded it`);
        return ch.address;
      }
    }
    if (!fresh) throw new Error(`this client already has ${MAX_NONCES} closed channels with proxy ${e.proxy.toString()}; open one by hand ("cocoon client deposit")`);
    const amount = this.o.funding.channelDeposit;
    if (amount < minDeposit) throw new Error(`the channel deposit ${tonText(amount)} is under the root's minimum deposit ${tonText(minDeposit)}; raise --channel-deposit`);
    await this.rereadBudget();
    this.checkBudget(amount, `opening a channel with proxy ${e.proxy.toString()}`);
    await this.checkWallet(amount, `open a channel with proxy ${e.proxy.toString()}`);
    this.log.info(`opening a channel with proxy ${e.proxy.toString()}: depositing ${tonText(amount)} (budget left ${tonText(this.budget().left)})`);
    await this.send(amount, async () => {
      await this.o.wallet.sendBatch([{ to: fresh.address, value: amount, init: fresh.init!, body: topUpBody() }]);
      const st = await this.confirm(fresh.address, amount);
      this.note(fresh.address, st.deposited, st.status);
    });
    await this.o.afterDeploy?.(fresh.address);
    this.record(fresh.address);
    e.channel = fresh.address;
    this.log.info(`opened channel ${fresh.address.toString()} with proxy ${e.proxy.toString()} (${tonText(amount)}); recorded it in ${this.o.config.file ?? "memory"}`);
    return fresh.address;
  }

  private async topUpNow(e: ProxyFunding, available: AvailableFn): Promise<Address | undefined> {
    const channel = e.channel!;
    const left = await available();
    if (left === undefined || left >= this.topUpBelow) return channel;
    const st = await this.o.ton.channelState(channel);
    if (st.status !== ChannelStatus.OPEN) throw new Error(`channel ${channel.toString()} is ${["open", "closing", "closed"][st.status]}: it takes no deposit`);
    await this.rereadBudget();
    const amount = minBig(this.o.funding.channelDeposit, this.budget().left);
    if (amount <= 0n) this.checkBudget(this.o.funding.channelDeposit, `topping up channel ${channel.toString()} (it can pay ${tonText(left > 0n ? left : 0n)} more)`);
    await this.checkWallet(amount, `top up channel ${channel.toString()}`);
    this.log.info(`channel ${channel.toString()} with proxy ${e.proxy.toString()} can pay ${tonText(left > 0n ? left : 0n)} more (under ${tonText(this.topUpBelow)}): topping it up with ${tonText(amount)}`);
    await this.send(amount, async () => {
      await this.o.wallet.sendBatch([{ to: channel, value: amount, body: topUpBody() }]);
      const after = await this.confirm(channel, st.deposited + amount);
      this.note(channel, after.deposited, after.status);
    });
    e.topUps++;
    // The payer re-reads the channel before the operation ends: a caller after it sees the new deposit, not a shortfall.
    await available();
    return channel;
  }

  private checkBudget(amount: bigint, what: string): void {
    const b = this.budget();
    if (amount > b.left) {
      throw new BudgetError(`${what} needs ${tonText(amount)} and the deposit budget has ${tonText(b.left)} left (--max-deposit ${tonText(b.max)}, ${tonText(b.used)} deposited in this client's channels that are not closed); not moving money: raise --max-deposit, or close channels you no longer use`);
    }
  }

  private async checkWallet(amount: bigint, what: string): Promise<void> {
    const balance = await this.o.wallet.balance();
    if (balance < amount + FUNDING_FEE_MARGIN) {
      throw new Error(`wallet ${this.o.wallet.friendlyAddress} holds ${tonText(balance)}: not enough to ${what} with ${tonText(amount)} plus fees; fund the wallet or lower --channel-deposit`);
    }
  }

  /** Counts `amount` against the budget while it is on its way (the chain read after it counts it from then on). */
  private async send(amount: bigint, op: () => Promise<void>): Promise<void> {
    this.pendingNano += amount;
    try {
      await op();
    } finally {
      this.pendingNano -= amount;
    }
  }

  /** Waits until the channel's deposit reaches `deposited` (the message from the wallet is processed after it). */
  private async confirm(channel: Address, deposited: bigint): Promise<{ deposited: bigint; status: number }> {
    const deadline = Date.now() + (this.o.confirmMs ?? CONFIRM_MS);
    for (;;) {
      try {
        if (await this.o.ton.client.isContractDeployed(channel)) {
          const st = await this.o.ton.channelState(channel);
          if (st.deposited >= deposited) return st;
        }
      } catch {
        // a transient endpoint error: keep polling until the deadline
      }
      if (Date.now() >= deadline) throw new Error(`the deposit sent to channel ${channel.toString()} did not show on chain within ${Math.round((this.o.confirmMs ?? CONFIRM_MS) / 1000)} s; it is checked again before anything more is sent`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  private record(channel: Address): void {
    if (!this.o.config.channels.some((a) => a.equals(channel))) this.o.config.channels.push(channel);
    if (this.o.config.file) recordChannelInFile(this.o.config.file, channel);
  }

  /** The funding view of one proxy for /status (paymentsByProxy), amounts in nanoTON. */
  status(proxy: Address): FundingStatus {
    const e = this.byProxy.get(proxy.toRawString());
    const b = this.budget();
    return {
      state: e?.state ?? "none",
      channelDeposit: this.o.funding.channelDeposit.toString(),
      topUpBelow: this.topUpBelow.toString(),
      topUps: e?.topUps ?? 0,
      failures: e?.failures ?? 0,
      budget: { max: b.max.toString(), used: b.used.toString(), left: b.left.toString() },
      ...(e?.lastError ? { lastError: e.lastError } : {}),
      ...(e?.retryAt ? { retryAt: new Date(e.retryAt).toISOString() } : {}),
    };
  }

  /** Waits for the operations running now (bounded by `ms`). */
  async settled(ms: number): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const running = [...this.byProxy.values()].map((e) => e.running).filter(Boolean);
    await Promise.race([Promise.allSettled(running), new Promise((r) => (t = setTimeout(r, ms)))]);
    clearTimeout(t);
  }

  /** No more operations for this proxy (its payer closed): a scheduled retry is dropped. */
  stopProxy(proxy: Address): void {
    const e = this.byProxy.get(proxy.toRawString());
    if (!e) return;
    e.stopped = true;
    clearTimeout(e.retryTimer);
    e.retryTimer = undefined;
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.byProxy.values()) {
      clearTimeout(e.retryTimer);
      e.retryTimer = undefined;
    }
  }
}

/** Refused for the budget: logged once, retried only after the back-off (the budget may free up when a channel closes). */
export class BudgetError extends Error {}

const minBig = (a: bigint, b: bigint) => (a < b ? a : b);

const tonText = (n: bigint) => `${fromNano(n)} TON`;
