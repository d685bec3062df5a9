/**
 * The proxy's Meter with real money: client channels on TON, client-signed cumulative vouchers, prices from the
 * root contract, worker earnings and batched settlement.
 *
 * Per request: admit (apply the piggybacked voucher, check credit, reserve the request's maximum cost), then settle
 * (price the worker-reported usage, write the receipt to the ledger BEFORE the cost is reported, credit the worker).
 * Admission rule, per channel, with capacity = what the channel can ever pay (redeemed + balance - reserve):
 *   owed     = charged (sum of settled costs) - signed (latest client voucher)
 *   refuse if owed > this request's maximum cost + costs settled in the last VOUCHER_GRACE_MS
 *                                                            ("previous voucher missing")
 *   refuse if owed + in-flight reservations + maximum > capacity - signed     ("insufficient funds")
 *   wait  if owed + in-flight reservations + maximum > maxUnsignedNano        (bounded trust; 429 after EXPOSURE_WAIT_MS)
 * with the channel's on-chain state re-read once it is older than CHANNEL_STATE_MAX_AGE_MS (a closing channel is
 * refused, and its newest voucher redeemed at once).
 * A sequential client never owes more than one request's maximum cost. A concurrent one may owe, besides, the
 * answers of the last moment whose vouchers are still on the way (so a busy app sees no spurious refusals);
 * a client that stops signing is cut off after that grace, and never gets more than its deposit.
 *
 * Lazy voucher verification: "signed" is always a VERIFIED voucher. A voucher piggybacked on a request is kept as
 * pending and verified (one Ed25519 verify covers every older one: they are cumulative) only when admission needs it
 * or VOUCHER_VERIFY_INTERVAL_MS has passed, and before every redemption. A busy client costs one verify per interval
 * instead of one per request; a forged voucher is never credited, and is refused when it is checked.
 *
 * Nothing goes on chain per request: the Batcher (timer + thresholds) redeems the latest voucher of every channel
 * in ONE operator-wallet transaction, and hands each worker a new proxy-signed cumulative payout voucher (off chain;
 * the worker claims it itself). Everything is in the ledger first, so a restarted proxy resumes where it was:
 * vouchers are cumulative, so nothing can be redeemed or paid twice.
 */
import type { Address } from "@ton/core";
import { signedReceiptWireSchema, type ChannelView, type InferenceHead, type PaymentsReply, type PaymentsRequest, type ReconcileAnswer, type SignedReceiptWire, type WorkerPayments } from "../protocol/messages.js";
import type { Usage } from "../protocol/openai.js";
import { MeterRefusal, type ClientContext, type Meter, type MeterHost, type SettledUsage } from "../proxy/meter.js";
import { CHANNEL_OP_VALUE, ChannelStatus, redeemBody } from "../chain/contracts/ClientChannel.js";
import { PROXY_OP_VALUE, withdrawFeeBody } from "../chain/contracts/ProxyContract.js";
import { STORAGE_RESERVE } from "../chain/contracts/opcodes.js";
import { encodeSignedVoucher, signVoucher, verifySignedVoucher, voucherCell, type Ed25519Signer } from "../chain/vouchers.js";
import type { Ledger } from "./ledger.js";
import { COEFFICIENT_BASE, costFields, type PriceBook } from "./pricing.js";
import { decodeVoucherBase64, verifyRegistration } from "./messages.js";
import { parseAddress, type TonAccess } from "./ton.js";
import { MAX_MESSAGES_PER_TRANSFER, type WalletService } from "../chain/wallet.js";
import { silentLogger, type Logger } from "../util/log.js";
import { CocoonError } from "../protocol/errors.js";

/** Defaults: redeem at 1 TON or every 30 s; sign payouts at 0.5 TON or every 30 s. */
export const DEFAULT_REDEEM_THRESHOLD = 1_000_000_000n;
export const DEFAULT_REDEEM_INTERVAL_MS = 30_000;
export const DEFAULT_PAYOUT_THRESHOLD = 500_000_000n;
export const DEFAULT_PAYOUT_INTERVAL_MS = 30_000;
/** How long a settled answer may wait for its client's voucher before the client is refused further requests. */
export const VOUCHER_GRACE_MS = 2_000;
/** Longest a piggybacked voucher waits to be verified while admission does not need it. */
export const VOUCHER_VERIFY_INTERVAL_MS = 100;
/** How many of a channel's newest charged answers a reconciliation shows the client. */
export const RECONCILE_WINDOW = 256;
/** Default cap on what one channel may have written off by disputes before the proxy stops serving it. */
export const DEFAULT_MAX_WRITE_OFF = 1_000_000_000n;
/**
 * Default bound on the proxy's unsigned exposure to one channel: answers charged but not yet signed plus the maximum
 * cost of requests in flight. What a client that stops signing can take without paying is at most this.
 */
export const DEFAULT_MAX_UNSIGNED_NANO = 2_000_000_000n;
/** How long a request waits for the client's vouchers when the exposure bound is reached (then 429). */
export const EXPOSURE_WAIT_MS = 10_000;
/** A channel's on-chain state (balance, open/closing) is re-read before admission once it is older than this. */
export const CHANNEL_STATE_MAX_AGE_MS = 5_000;
/**
 * The operator wallet pays every redeem's attached value (which ends in the proxy contract, the operator's own), so a
 * busy proxy drains it. Below WALLET_LOW_NANO, the meter moves the operator's share of the contract's balance (never
 * what is owed to workers) back to the wallet, WALLET_TOP_UP_NANO at a time.
 */
export const WALLET_LOW_NANO = 2_000_000_000n;
export const WALLET_TOP_UP_NANO = 5_000_000_000n;
/** At most one "refused" log line per channel in this interval (with a count of the rest). */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface ProxyMeterOptions {
  ton: TonAccess;
  /** The proxy operator's wallet: redeems vouchers (channels accept redeems only from it). */
  wallet: WalletService;
  /** The proxy contract (vault) that receives redeemed money and pays workers. */
  proxyContract: Address;
  root?: Address;
  prices: PriceBook;
  ledger: Ledger;
  /** Signs payout vouchers: must match the proxy contract's signing key. */
  payoutSigner: Ed25519Signer;
  /** Channels must use at least this close delay (the root's clientCloseDelay), in seconds. */
  minCloseDelay?: number;
  redeemThreshold?: bigint;
  redeemIntervalMs?: number;
  payoutThreshold?: bigint;
  payoutIntervalMs?: number;
  log?: Logger;
  /** Close the ledger in close() (when the meter opened it). */
  closeLedger?: boolean;
  /** Most a channel may have written off by disputes (nanoTON); beyond it the client is refused. */
  maxWriteOffNano?: bigint;
  /** Bound on unsigned exposure per channel (nanoTON); see DEFAULT_MAX_UNSIGNED_NANO. */
  maxUnsignedNano?: bigint;
}

interface ChannelEntry {
  address: Address;
  key: string;
  clientKey: Buffer;
  client: Address;
  /** What the channel can ever pay: redeemed + balance - storage reserve (refreshed from chain). */
  capacity: bigint;
  status: number;
  redeemedOnChain: bigint;
  inflight: Map<string, bigint>;
  /** Sum of `inflight`, kept as it changes (admission reads it on every request). */
  inflightTotal: bigint;
  /** When the on-chain state was last read, and the read in progress (one at a time). */
  stateAt: number;
  refreshing?: Promise<void>;
  /** Requests waiting for the exposure to drop (a voucher, a settled or released request). */
  waiters: Set<() => void>;
  /** Costs settled within the last VOUCHER_GRACE_MS: their vouchers may still be on the way. */
  recent: RecentCosts;
  /** The last voucher accepted, as received: a client piggybacks it on every request until it signs a newer one. */
  lastVoucher?: string;
  /** The newest piggybacked voucher, not verified yet (see "lazy voucher verification"). */
  pendingVoucher?: string;
  /** When a voucher of this channel was last verified. */
  verifiedAt: number;
  /** Rate limit of refusal logs: when the last was written, how many were left out since. */
  refusalLog: { at: number; suppressed: number };
}

interface WorkerEntry {
  id: string;
  address: Address;
  key: string;
}

const raw = (a: Address) => a.toRawString();

/**
 * Costs settled recently, oldest first, with their running total: admission asks for the total of the last
 * VOUCHER_GRACE_MS on every request, which must not cost a pass over every answer of that window (~1,600 at 800 req/s).
 */
class RecentCosts {
  private items: { at: number; cost: bigint }[] = [];
  private head = 0;
  private total = 0n;

  add(at: number, cost: bigint): void {
    this.items.push({ at, cost });
    this.total += cost;
  }

  /** Drops the costs settled before `since` and returns the sum of the rest. */
  totalSince(since: number): bigint {
    while (this.head < this.items.length && this.items[this.head]!.at <= since) this.total -= this.items[this.head++]!.cost;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return this.total;
  }
}

/** The channel's deposit (as last read on chain) cannot cover this request: re-read once, then refuse. */
class DepositShort extends MeterRefusal {}

/**
 * Admission would take the proxy's unsigned exposure to a channel past a bound: wait for the client's vouchers (or
 * requests ending) before refusing with `code`. Under saturation an honest client's vouchers are late, not missing.
 */
class ExposureLimit extends CocoonError {
  constructor(
    override readonly code: "voucher_missing" | "overloaded",
    message: string,
  ) {
    super(code, message);
  }
}

export class ProxyMeter implements Meter {
  /** See VOUCHER_GRACE_MS; tests set 0 to check the strict sequential bound. */
  voucherGraceMs = VOUCHER_GRACE_MS;
  /** See VOUCHER_VERIFY_INTERVAL_MS; 0 verifies every piggybacked voucher at once. */
  voucherVerifyIntervalMs = VOUCHER_VERIFY_INTERVAL_MS;
  /** See CHANNEL_STATE_MAX_AGE_MS and EXPOSURE_WAIT_MS (tests shorten them). */
  channelStateMaxAgeMs = CHANNEL_STATE_MAX_AGE_MS;
  exposureWaitMs = EXPOSURE_WAIT_MS;
  /** See DEFAULT_MAX_UNSIGNED_NANO. */
  maxUnsignedNano: bigint;
  /** See DEFAULT_MAX_WRITE_OFF. */
  maxWriteOffNano: bigint;
  /** Ed25519 verifications of client vouchers (status: how much lazy verification saves). */
  vouchersVerified = 0;
  private host?: MeterHost;
  private readonly log: Logger;
  private readonly byClient = new Map<string, ChannelEntry>();
  private readonly channels = new Map<string, ChannelEntry>();
  private readonly workers = new Map<string, WorkerEntry>();
  private readonly timers: NodeJS.Timeout[] = [];
  private redeeming?: Promise<void>;
  private payingOut?: Promise<void>;
  private readonly chainView = { proxyBalance: 0n, freeBalance: 0n, received: 0n, paidOut: 0n, withdrawn: 0n, updatedAt: 0 };
  private lastError?: string;
  private closed = false;
  /** Wallet transactions this meter sent (redeem batches). */
  redeemTransfers = 0;
  payoutVouchers = 0;

  private constructor(private readonly o: ProxyMeterOptions) {
    this.log = o.log ?? silentLogger;
    this.maxUnsignedNano = o.maxUnsignedNano ?? DEFAULT_MAX_UNSIGNED_NANO;
    this.maxWriteOffNano = o.maxWriteOffNano ?? DEFAULT_MAX_WRITE_OFF;
  }

  /** Checks the proxy contract against this operator and signer, recovers pending settlements, starts the timers. */
  static async start(o: ProxyMeterOptions): Promise<ProxyMeter> {
    const m = new ProxyMeter(o);
    const cfg = await o.ton.proxyConfig(o.proxyContract);
    if (!cfg.owner.equals(o.wallet.address)) {
      throw new Error(`proxy contract ${o.proxyContract.toString()} belongs to ${cfg.owner.toString()}, not to this operator wallet ${o.wallet.address.toString()}`);
    }
    if (!cfg.signingKey.equals(o.payoutSigner.publicKey)) {
      throw new Error(`proxy contract ${o.proxyContract.toString()} expects payout vouchers signed by key ${cfg.signingKey.toString("hex")}, and this proxy holds another key`);
    }
    await m.recoverPending();
    await m.refreshChainView().catch(() => undefined);
    m.timers.push(setInterval(() => void m.flushRedeems(true).catch(() => undefined), o.redeemIntervalMs ?? DEFAULT_REDEEM_INTERVAL_MS));
    m.timers.push(setInterval(() => void m.flushPayouts(true).catch(() => undefined), o.payoutIntervalMs ?? DEFAULT_PAYOUT_INTERVAL_MS));
    for (const t of m.timers) t.unref();
    return m;
  }

  attach(host: MeterHost): void {
    this.host = host;
  }

  // ---- channels and vouchers ----

  private async register(client: ClientContext, body: Record<string, unknown>): Promise<ChannelEntry> {
    const clientId = client.clientId;
    let address: Address;
    try {
      address = parseAddress(body.channel, "channel");
    } catch (e) {
      throw new MeterRefusal("bad_request", (e as Error).message);
    }
    const { config, state } = await this.o.ton.channel(address).catch((e: Error) => {
      throw new MeterRefusal("insufficient_funds", e.message);
    });
    const fail = (why: string) => new MeterRefusal("insufficient_funds", `channel ${address.toString()} cannot be used with this proxy: ${why}`);
    await this.o.ton.assertGenuineChannel(address, config).catch((e: Error) => { throw fail(e.message); }); // by address, never by getters
    if (!config.proxyOperator.equals(this.o.wallet.address)) throw fail(`it names operator ${config.proxyOperator.toString()}, this proxy's operator is ${this.o.wallet.address.toString()}`);
    if (!config.proxyVault.equals(this.o.proxyContract)) throw fail(`it pays to ${config.proxyVault.toString()}, this proxy's contract is ${this.o.proxyContract.toString()}`);
    if (config.closeDelay < (this.o.minCloseDelay ?? 0)) throw fail(`its close delay ${config.closeDelay} s is below the network's ${this.o.minCloseDelay} s`);
    if (state.status !== ChannelStatus.OPEN) throw fail("it is closing or closed; open a new channel (new nonce) and deposit");
    if (!verifyRegistration(body.proof, address, this.o.proxyContract, clientId, client.session, config.clientKey)) {
      throw new MeterRefusal("bad_request", "the registration proof is not signed by the channel's client key over this connection's session binding; only the channel's owner can register it, on its own connection (update the client if it is older than this proxy)");
    }
    const key = raw(address);
    let e = this.channels.get(key);
    if (!e) {
      e = {
        address, key, clientKey: config.clientKey, client: config.client, capacity: 0n, status: state.status, redeemedOnChain: state.redeemed,
        inflight: new Map(), inflightTotal: 0n, stateAt: 0, waiters: new Set(), recent: new RecentCosts(), verifiedAt: 0, refusalLog: { at: 0, suppressed: 0 },
      };
      this.channels.set(key, e);
    }
    this.updateChannel(e, state);
    this.byClient.set(client.session, e);
    this.log.info(`client ${clientId} registered channel ${address.toString()} (can pay ${e.capacity} nanoTON)`);
    return e;
  }

  private updateChannel(e: ChannelEntry, state: { status: number; redeemed: bigint; balance: bigint }): void {
    const cap = state.redeemed + state.balance - STORAGE_RESERVE;
    e.capacity = cap > 0n ? cap : 0n;
    const wasOpen = e.status === ChannelStatus.OPEN;
    e.status = state.status;
    e.redeemedOnChain = state.redeemed;
    e.stateAt = Date.now();
    if (wasOpen && state.status !== ChannelStatus.OPEN) {
      // The client started closing: no more requests on credit, and its newest voucher is redeemed now, within the
      // close delay (redeemNow treats closing channels as due whatever the threshold).
      this.log.info(`channel ${e.address.toString()} is closing; refusing its requests and redeeming its newest voucher`);
      void this.flushRedeems(false).catch(() => undefined);
    }
  }

  private reserve(e: ChannelEntry, requestId: string, max: bigint): void {
    e.inflight.set(requestId, max);
    e.inflightTotal += max;
  }

  /** Ends a reservation and wakes requests waiting for the exposure to drop. */
  private unreserve(e: ChannelEntry, requestId: string): void {
    const max = e.inflight.get(requestId);
    if (max !== undefined) {
      e.inflight.delete(requestId);
      e.inflightTotal -= max;
    }
    this.wake(e);
  }

  private wake(e: ChannelEntry): void {
    for (const w of e.waiters) w();
    e.waiters.clear();
  }

  private signed(e: ChannelEntry): bigint {
    return this.o.ledger.latestClientVoucher(e.key)?.cumulativeNano ?? 0n;
  }

  /** What the channel owes for answers: every charged answer, less those written off after a dispute. */
  private charged(e: ChannelEntry): bigint {
    return this.o.ledger.spentOf(e.key) - this.o.ledger.writtenOffOf(e.key);
  }

  /** Logs a refusal with its numbers, at most once per REFUSAL_LOG_INTERVAL_MS per channel. */
  private logRefusal(e: ChannelEntry, message: string): void {
    const now = Date.now();
    if (now - e.refusalLog.at < REFUSAL_LOG_INTERVAL_MS) {
      e.refusalLog.suppressed++;
      return;
    }
    const more = e.refusalLog.suppressed ? ` (${e.refusalLog.suppressed} similar refusals in the last ${Math.round((now - e.refusalLog.at) / 1000)} s not logged)` : "";
    e.refusalLog = { at: now, suppressed: 0 };
    this.log.warn(`refused a request of channel ${e.address.toString()}: ${message}${more}`);
  }

  /** Verifies a client voucher and writes it to the ledger (before anything is acknowledged). */
  private async applyVoucher(e: ChannelEntry, b64: unknown): Promise<bigint> {
    if (e.pendingVoucher === b64) e.pendingVoucher = undefined;
    if (b64 === e.lastVoucher) return this.signed(e); // the same bytes were verified and stored already
    let cumulative: bigint;
    let signature: Buffer;
    try {
      const { signed } = decodeVoucherBase64(b64);
      this.vouchersVerified++;
      e.verifiedAt = Date.now();
      const v = verifySignedVoucher(signed, { kind: "payment", publicKey: e.clientKey, contract: e.address, globalId: this.o.ton.globalId });
      cumulative = v.cumulative;
      signature = signed.signature;
    } catch (err) {
      throw new MeterRefusal("bad_request", `voucher refused: ${(err as Error).message}`);
    }
    const latest = this.signed(e);
    if (cumulative <= latest) return latest; // an older voucher: nothing new
    if (cumulative > e.capacity) {
      await this.refreshChannel(e);
      if (cumulative > e.capacity) {
        throw new MeterRefusal("insufficient_funds", `voucher refused: it signs ${cumulative} nanoTON but channel ${e.address.toString()} holds only ${e.capacity}; deposit more first`);
      }
    }
    this.o.ledger.recordClientVoucher({ key: e.key, cumulativeNano: cumulative, signature, seq: 0 });
    e.lastVoucher = b64 as string;
    this.wake(e);
    if (cumulative - e.redeemedOnChain >= (this.o.redeemThreshold ?? DEFAULT_REDEEM_THRESHOLD)) void this.flushRedeems(false).catch(() => undefined);
    return cumulative;
  }

  /** Re-reads the channel's on-chain state (one read at a time per channel; concurrent callers share it). */
  private refreshChannel(e: ChannelEntry): Promise<void> {
    e.refreshing ??= (async () => {
      try {
        this.updateChannel(e, await this.o.ton.channelState(e.address));
      } catch (err) {
        this.log.warn(`cannot read channel ${e.address.toString()}: ${(err as Error).message}`);
      }
    })().finally(() => (e.refreshing = undefined));
    return e.refreshing;
  }

  private entryOf(client: ClientContext): ChannelEntry {
    const e = this.byClient.get(client.session);
    if (!e) {
      throw new MeterRefusal("insufficient_funds", "this proxy charges per request and no payment channel is registered for this client; start the client with --payments (cocoon devnet does this) and deposit with \"cocoon client deposit\"");
    }
    return e;
  }

  /** Verifies and records the channel's pending voucher, if any (a forged one is refused here). */
  private async applyPending(e: ChannelEntry): Promise<void> {
    if (e.pendingVoucher !== undefined) await this.applyVoucher(e, e.pendingVoucher); // it clears pendingVoucher
  }

  async admit(client: ClientContext, head: InferenceHead): Promise<void> {
    const e = this.entryOf(client);
    const voucher = head.payment?.voucher;
    if (voucher !== undefined && voucher !== e.lastVoucher) {
      if (typeof voucher === "string") e.pendingVoucher = voucher;
      else await this.applyVoucher(e, voucher); // not even text: refused at once, with the reason
    }
    let max: bigint;
    try {
      // Reserved at the coefficient the proxy says bounds this request (src/proxy/proxy.ts reserveCoefficient).
      max = this.o.prices.maxCost(head.model, head.maxTokens, head.bodyBytes, head.maxCoefficient ?? COEFFICIENT_BASE);
    } catch (err) {
      throw new MeterRefusal("bad_request", (err as Error).message);
    }
    if (e.pendingVoucher !== undefined && Date.now() - e.verifiedAt >= this.voucherVerifyIntervalMs) await this.applyPending(e);
    // The state read on chain is recent (a client that started closing, or whose deposit shrank, is seen in time).
    if (Date.now() - e.stateAt > this.channelStateMaxAgeMs) await this.refreshChannel(e);
    const deadline = Date.now() + this.exposureWaitMs;
    let reread = false;
    for (let problem = await this.admissionProblem(e, max); problem; problem = await this.admissionProblem(e, max)) {
      if (problem instanceof DepositShort && !reread) {
        reread = true;
        await this.refreshChannel(e); // a deposit may have arrived since the last read
        continue;
      }
      if (!(problem instanceof ExposureLimit)) throw problem;
      const left = deadline - Date.now();
      // The client's vouchers, or answers ending, bring the exposure down: wait for that (bounded).
      if (left <= 0 || !(await this.waitChange(e, left))) {
        const m = `${problem.message}; waited ${Math.round(this.exposureWaitMs / 1000)} s for the client's vouchers${problem.code === "overloaded" ? " (retry-after 1)" : ""}`;
        this.logRefusal(e, m);
        throw new MeterRefusal(problem.code, m);
      }
    }
    this.reserve(e, head.requestId, max);
  }

  /**
   * Why the request cannot be admitted now (undefined: it can), counting the newest voucher: when only the verified
   * one was counted and a newer one is pending, it is verified now (a forged one is refused here) and the rule applied
   * again.
   */
  private async admissionProblem(e: ChannelEntry, max: bigint): Promise<Error | undefined> {
    const check = (): Error | undefined => {
      try {
        this.admitWith(e, max);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    };
    const problem = check();
    if (!problem || e.pendingVoucher === undefined || !(problem instanceof MeterRefusal || problem instanceof ExposureLimit)) return problem;
    await this.applyPending(e);
    return check();
  }

  /** Resolves true when something changed the channel's exposure, false after `ms`. */
  private waitChange(e: ChannelEntry, ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (changed: boolean) => {
        clearTimeout(timer);
        e.waiters.delete(wake);
        resolve(changed);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), ms);
      e.waiters.add(wake);
    });
  }

  /**
   * The admission rule (see the top of this file) against the verified voucher and the last state read on chain;
   * throws a MeterRefusal, or an ExposureLimit when only the unsigned exposure bound stands in the way.
   */
  private admitWith(e: ChannelEntry, max: bigint): void {
    const signed = this.signed(e);
    const charged = this.charged(e);
    const owed = charged > signed ? charged - signed : 0n;
    const now = Date.now();
    const writtenOff = this.o.ledger.writtenOffOf(e.key);
    if (writtenOff > this.maxWriteOffNano) {
      const m = `the client disputed answers worth ${writtenOff} nanoTON in total, above this proxy's limit of ${this.maxWriteOffNano}; the operator must review the channel's disputes (ledger table write_offs) before it is served again`;
      this.logRefusal(e, m);
      throw new MeterRefusal("insufficient_funds", m);
    }
    const allowance = e.recent.totalSince(now - this.voucherGraceMs);
    if (owed > max + allowance) {
      // Waited for first (the voucher may be on its way); then refused, which the client can always act on: it
      // reconciles (pays the answers it can verify, disputes the rest) and retries.
      throw new ExposureLimit("voucher_missing", `previous voucher missing: answers already charged cost ${charged} nanoTON and the latest voucher signs ${signed} (owed ${owed}, allowed ${max + allowance}); reconcile (payments "reconcile") and send a voucher for at least ${charged}`);
    }
    if (e.status !== ChannelStatus.OPEN) {
      throw new MeterRefusal("insufficient_funds", `channel ${e.address.toString()} is closing or closed; open a new channel and deposit`);
    }
    if (owed + e.inflightTotal + max > e.capacity - signed) {
      throw new DepositShort("insufficient_funds", `insufficient funds: this request may cost up to ${max} nanoTON, the channel has ${e.capacity - signed - owed - e.inflightTotal} nanoTON left (deposit ${e.capacity}, signed ${signed}, owed ${owed}, reserved ${e.inflightTotal}); deposit more with "cocoon client deposit"`);
    }
    // Bounded trust: what the client has not signed for (answers owed + requests in flight + this one) stays under a
    // small constant, whatever its deposit (at least two requests' worth, so any single request can run).
    const bound = this.maxUnsignedNano > 2n * max ? this.maxUnsignedNano : 2n * max;
    if (owed + e.inflightTotal + max > bound) {
      throw new ExposureLimit("overloaded", `this client has ${owed} nanoTON of answers unsigned and ${e.inflightTotal} reserved for ${e.inflight.size} requests in flight; this proxy serves at most ${bound} on credit per channel`);
    }
  }

  price(model: string, usage: Usage, coefficient?: number): bigint | undefined {
    try {
      return this.o.prices.cost(model, usage.prompt_tokens, usage.completion_tokens, coefficient).total;
    } catch {
      return undefined;
    }
  }

  async settle(client: ClientContext, head: InferenceHead, workerId: string, usage: Usage, receipt?: unknown, coefficient?: number): Promise<SettledUsage> {
    const e = this.entryOf(client);
    try {
      const cost = this.o.prices.cost(head.model, usage.prompt_tokens, usage.completion_tokens, coefficient);
      const w = this.workers.get(workerId);
      const earn = w ? this.o.prices.workerShare(cost.total) : 0n;
      if (!w) this.log.warn(`worker ${workerId} announced no payout address; its share of ${head.requestId} stays with the proxy`);
      this.o.ledger.recordReceipt({
        requestId: head.requestId, model: head.model, promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens,
        costNano: cost.total, workerEarnNano: earn, workerId: w ? w.key : `unpaid:${workerId}`, channel: e.key,
        ...(receipt !== undefined ? { receipt: Buffer.from(JSON.stringify(receipt)) } : {}),
      });
      e.recent.add(Date.now(), cost.total);
      if (w && this.unpaidOf(w) >= (this.o.payoutThreshold ?? DEFAULT_PAYOUT_THRESHOLD)) void this.flushPayouts(false).catch(() => undefined);
      await this.o.ledger.durable(); // the receipt is on disk before its cost is reported (group commit)
      return { cost: costFields(cost) };
    } finally {
      this.unreserve(e, head.requestId);
    }
  }

  release(client: ClientContext, head: InferenceHead): void {
    const e = this.byClient.get(client.session);
    if (e) this.unreserve(e, head.requestId);
  }

  onClientGone(client: ClientContext): void {
    this.byClient.delete(client.session);
  }

  async handleClientRequest(client: ClientContext, body: PaymentsRequest): Promise<PaymentsReply> {
    if (body.type === "register") {
      const e = await this.register(client, body);
      return { ok: true, ...this.channelView(e) };
    }
    const e = this.entryOf(client);
    if (body.type === "voucher") {
      await this.applyVoucher(e, body.voucher);
      await this.o.ledger.durable();
      return { ok: true, ...this.channelView(e) };
    }
    if (body.type === "status") return { ok: true, ...this.channelView(e) };
    if (body.type === "reconcile") return { ok: true, ...this.channelView(e), answers: this.answersToReconcile(e, body.requests) };
    return { ok: true, ...(await this.dispute(e, body.requests)), ...this.channelView(e) };
  }

  /**
   * The charged answers a client asks about (`requests`: ids whose end it did not see; however busy the channel, they
   * are found) and the channel's newest ones (what it may not know about), each with the worker-signed receipt.
   */
  private answersToReconcile(e: ChannelEntry, requests: readonly string[] = []): ReconcileAnswer[] {
    const named = requests;
    const seen = new Set<string>();
    return [...this.o.ledger.receiptsOf(e.key, named), ...this.o.ledger.recentReceipts(e.key, RECONCILE_WINDOW)]
      .filter((r) => !seen.has(r.requestId) && seen.add(r.requestId))
      .map((r) => ({
        requestId: r.requestId, model: r.model, promptTokens: r.promptTokens, completionTokens: r.completionTokens,
        cost: r.costNano.toString(), ...receiptField(r.receipt),
      }));
  }

  /**
   * The client disputes charged answers it cannot pay (no valid receipt reached it, it never sent them, or it refused
   * their receipt): each is written off (charged to no one; the proxy bears it) so the client is never refused for a
   * debt it cannot act on. Every write-off is logged; past maxWriteOffNano the channel is refused (see admitWith).
   */
  private async dispute(e: ChannelEntry, requests: readonly { requestId: string; reason: string }[]): Promise<{ writtenOff: string }> {
    let total = 0n;
    for (const r of requests) {
      const w = this.o.ledger.recordWriteOff({ requestId: r.requestId, channel: e.key, reason: r.reason });
      if (!w.inserted) continue;
      total += w.amountNano;
      this.log.warn(`channel ${e.address.toString()} disputes answer ${r.requestId} (${w.amountNano} nanoTON): ${r.reason.slice(0, 200)}; written off`);
    }
    await this.o.ledger.durable();
    return { writtenOff: total.toString() };
  }

  private channelView(e: ChannelEntry): ChannelView {
    const signed = this.signed(e);
    const charged = this.charged(e);
    return {
      channel: e.address.toString(), capacity: e.capacity.toString(), signed: signed.toString(), charged: charged.toString(),
      owed: (charged > signed ? charged - signed : 0n).toString(), redeemed: e.redeemedOnChain.toString(),
    };
  }

  // ---- workers ----

  onWorkerAnnounce(workerId: string, payments: WorkerPayments | undefined): void {
    if (payments === undefined) return;
    let address: Address;
    try {
      address = parseAddress(payments.payoutAddress, "payoutAddress");
    } catch (e) {
      this.log.warn(`worker ${workerId}: ${(e as Error).message}; it will not be paid`);
      return;
    }
    const w = { id: workerId, address, key: raw(address) };
    this.workers.set(workerId, w);
    // Re-deliver the newest voucher on EVERY announcement, not only the first one this process sees: a worker that
    // reconnects (same id) announces again, and a voucher signed while it was away never reached it. Workers
    // announce on connect and when their backend changes, and ignore a voucher they already hold.
    const latest = this.o.ledger.latestPayoutVoucher(w.key);
    if (latest) this.deliver(w, latest.cumulativeNano, latest.signature);
  }

  private unpaidOf(w: WorkerEntry): bigint {
    const earned = this.o.ledger.earnedOf(w.key);
    const latest = this.o.ledger.latestPayoutVoucher(w.key)?.cumulativeNano ?? 0n;
    return earned - latest;
  }

  private deliver(w: WorkerEntry, cumulative: bigint, signature: Buffer): boolean {
    const cell = voucherCell({ kind: "payout", globalId: this.o.ton.globalId, proxy: this.o.proxyContract, worker: w.address, cumulative });
    return this.host?.sendToWorker(w.id, { type: "payout", voucher: encodeSignedVoucher({ cell, signature }).toString("base64") }) ?? false;
  }

  /** Signs a new cumulative payout voucher for every worker whose unpaid earnings pass the threshold (or any, if forced). */
  flushPayouts(force: boolean): Promise<void> {
    if (this.payingOut) return this.payingOut;
    const run = (async () => {
      const threshold = this.o.payoutThreshold ?? DEFAULT_PAYOUT_THRESHOLD;
      for (const w of this.workers.values()) {
        const unpaid = this.unpaidOf(w);
        if (unpaid <= 0n || (!force && unpaid < threshold)) continue;
        const cumulative = this.o.ledger.earnedOf(w.key);
        const sv = signVoucher({ kind: "payout", globalId: this.o.ton.globalId, proxy: this.o.proxyContract, worker: w.address, cumulative }, this.o.payoutSigner);
        this.o.ledger.recordPayoutVoucher({ key: w.key, cumulativeNano: cumulative, signature: sv.signature, seq: 0 });
        await this.o.ledger.durable(); // on disk before it leaves: what a worker holds, the proxy never forgets
        this.payoutVouchers++;
        if (!this.deliver(w, cumulative, sv.signature)) this.log.warn(`worker ${w.id} is not connected; its payout voucher waits for its return`);
      }
    })();
    this.payingOut = run.finally(() => (this.payingOut = undefined));
    return this.payingOut;
  }

  // ---- redemption ----

  /** Redeems the latest voucher of every channel above the threshold (or any, if forced) in ONE wallet transaction. */
  flushRedeems(force: boolean): Promise<void> {
    if (this.redeeming) return this.redeeming.then(() => (force ? this.flushRedeems(force) : undefined));
    const run = this.redeemNow(force).catch((err: Error) => {
      this.lastError = `redeem: ${err.message}`;
      this.log.warn(`redeeming vouchers failed: ${err.message}; retrying on the next timer`);
      throw err;
    });
    this.redeeming = run.finally(() => (this.redeeming = undefined));
    return this.redeeming;
  }

  private async redeemNow(force: boolean): Promise<void> {
    if (this.closed) return;
    // Only verified vouchers are ever redeemed: check what is still pending first (a forged one is dropped, logged).
    for (const e of this.channels.values()) {
      await this.applyPending(e).catch((err: Error) => this.log.warn(`client voucher of ${e.address.toString()} refused: ${err.message}`));
    }
    const threshold = this.o.redeemThreshold ?? DEFAULT_REDEEM_THRESHOLD;
    const due = this.o.ledger.unsettledChannels().filter((u) => u.unsettled > 0n && (force || u.unsettled >= threshold || this.channels.get(u.key)?.status === ChannelStatus.CLOSING));
    for (let i = 0; i < due.length; i += MAX_MESSAGES_PER_TRANSFER) {
      const batch = [];
      for (const u of due.slice(i, i + MAX_MESSAGES_PER_TRANSFER)) {
        const address = parseAddress(u.key, "channel");
        const state = await this.o.ton.channelState(address);
        const e = this.channels.get(u.key);
        if (e) this.updateChannel(e, state);
        const v = this.o.ledger.latestClientVoucher(u.key)!;
        const ledgerRedeemed = u.settled + u.pending;
        // The chain redeemed more than the ledger knows: a redeem sent just before a crash landed after the restart
        // had given it up. Record it, so the ledger agrees with the chain and the next redeem asks only for the rest.
        if (state.redeemed > ledgerRedeemed) this.record(`redeem:${u.key}:${state.redeemed}:sync`, u.key, state.redeemed - ledgerRedeemed, "confirmed");
        if (state.redeemed >= v.cumulativeNano) continue;
        const id = `redeem:${u.key}:${v.cumulativeNano}:${Date.now()}`;
        this.record(id, u.key, v.cumulativeNano - state.redeemed, "pending");
        const signed = { cell: voucherCell({ kind: "payment", globalId: this.o.ton.globalId, channel: address, cumulative: v.cumulativeNano }), signature: v.signature };
        batch.push({ id, address, cumulative: v.cumulativeNano, message: { to: address, value: CHANNEL_OP_VALUE, body: redeemBody(signed) } });
      }
      if (batch.length === 0) continue;
      await this.keepWalletFunded().catch((err: Error) => this.log.warn(`could not top up the operator wallet from the proxy contract: ${err.message}`));
      await this.o.ledger.durable(); // the pending redemptions are on disk before the transaction leaves
      await this.o.wallet.sendBatch(batch.map((b) => b.message));
      this.redeemTransfers++;
      this.log.info(`redeemed ${batch.length} channel voucher(s) in one transaction`);
      for (const b of batch) await this.confirmRedeem(b.id, b.address, b.cumulative);
    }
    await this.refreshChainView().catch(() => undefined);
    await this.flushPayouts(false);
  }

  /**
   * Keeps the operator wallet able to pay for redeems: when it runs low, withdraws from the proxy contract what is
   * the operator's (its free balance less everything owed to workers: earned and not yet paid out on chain).
   */
  private async keepWalletFunded(): Promise<void> {
    const balance = await this.o.wallet.balance();
    if (balance >= WALLET_LOW_NANO) return;
    await this.refreshChainView();
    const owedToWorkers = this.o.ledger.earnedOf() - this.chainView.paidOut;
    const operatorShare = this.chainView.freeBalance - (owedToWorkers > 0n ? owedToWorkers : 0n);
    const amount = operatorShare < WALLET_TOP_UP_NANO ? operatorShare : WALLET_TOP_UP_NANO;
    if (amount <= PROXY_OP_VALUE) {
      this.log.warn(`the operator wallet holds ${balance} nanoTON and the proxy contract has no operator share to spare (${operatorShare}); top the wallet up, or redeems will stop`);
      return;
    }
    await this.o.wallet.sendBatch([{ to: this.o.proxyContract, value: PROXY_OP_VALUE, body: withdrawFeeBody(amount) }]);
    this.log.info(`operator wallet was low (${balance} nanoTON): withdrew ${amount} nanoTON of the proxy's own share from its contract`);
    await this.refreshChainView().catch(() => undefined);
  }

  private record(id: string, key: string, amount: bigint, status: "pending" | "confirmed"): void {
    this.o.ledger.recordSettlement({ txHash: id, kind: "redeem", counterparty: key, amountNano: amount, status });
  }

  private async confirmRedeem(id: string, address: Address, cumulative: bigint): Promise<void> {
    const state = await this.o.ton.channelState(address);
    const e = this.channels.get(raw(address));
    if (e) this.updateChannel(e, state);
    if (state.redeemed >= cumulative) this.o.ledger.updateSettlement(id, "confirmed");
    else {
      this.o.ledger.updateSettlement(id, "failed");
      this.lastError = `redeem of ${address.toString()} up to ${cumulative} did not apply (on chain: ${state.redeemed})`;
      this.log.warn(this.lastError);
    }
  }

  /** After a restart: settle what was sent but not confirmed, from the chain's state. */
  private async recoverPending(): Promise<void> {
    for (const s of this.o.ledger.pendingSettlements()) {
      if (s.kind !== "redeem") continue;
      // id = redeem:<workchain>:<hex>:<cumulative>:<time> (the channel's raw address has one colon)
      const parts = s.txHash.split(":");
      const key = parts.slice(1, 3).join(":");
      const cum = parts[3];
      if (parts.length !== 5 || !cum || !/^[0-9]+$/.test(cum)) continue;
      try {
        await this.confirmRedeem(s.txHash, parseAddress(key, "channel"), BigInt(cum));
      } catch (err) {
        this.log.warn(`cannot check pending redeem ${s.txHash}: ${(err as Error).message}`);
      }
    }
  }

  private async refreshChainView(): Promise<void> {
    const s = await this.o.ton.proxyState(this.o.proxyContract);
    Object.assign(this.chainView, { proxyBalance: s.balance, freeBalance: s.freeBalance, received: s.totalReceived, paidOut: s.totalPaidOut, withdrawn: s.totalWithdrawn, updatedAt: Date.now() });
  }

  status(): Record<string, unknown> {
    const t = this.o.ledger.totals();
    const channels = [...this.channels.values()].map((e) => ({ ...this.channelView(e), client: e.client.toString() }));
    const workers = [...this.workers.values()].map((w) => ({
      id: w.id, address: w.address.toString({ bounceable: false }),
      earned: this.o.ledger.totals(w.key).earned.toString(),
      voucher: (this.o.ledger.latestPayoutVoucher(w.key)?.cumulativeNano ?? 0n).toString(),
    }));
    return {
      network: this.o.ton.network,
      operator: this.o.wallet.address.toString({ bounceable: false }),
      proxyContract: this.o.proxyContract.toString(),
      ...(this.o.root ? { root: this.o.root.toString() } : {}),
      charged: t.spent.toString(),
      signed: this.o.ledger.unsettledChannels().reduce((s, u) => s + u.signed, 0n).toString(),
      redeemed: t.redeemed.toString(),
      workersEarned: t.earned.toString(),
      fees: t.fees.toString(),
      writtenOff: this.o.ledger.writtenOffOf().toString(),
      contract: {
        balance: this.chainView.proxyBalance.toString(), feesAvailable: this.chainView.freeBalance.toString(),
        received: this.chainView.received.toString(), paidOut: this.chainView.paidOut.toString(),
        ...(this.chainView.updatedAt ? { updatedAt: new Date(this.chainView.updatedAt).toISOString() } : {}),
      },
      transactions: { redeemBatches: this.redeemTransfers, payoutVouchers: this.payoutVouchers },
      vouchersVerified: this.vouchersVerified,
      ledger: { ...this.o.ledger.stats },
      channels,
      workers,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** Stops the timers and redeems what is outstanding (best effort). */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    await this.flushRedeems(true).catch(() => undefined);
    await this.flushPayouts(true).catch(() => undefined);
    this.closed = true;
    if (this.o.closeLedger) this.o.ledger.close();
  }
}

function parseJsonOrUndefined(b: Buffer): unknown {
  try {
    return JSON.parse(b.toString("utf8"));
  } catch {
    return undefined;
  }
}

/** The stored receipt (JSON text) as the reconcile reply carries it; one that no longer parses is left out. */
function receiptField(stored: Buffer | null): { receipt?: SignedReceiptWire } {
  if (!stored) return {};
  const r = signedReceiptWireSchema.safeParse(parseJsonOrUndefined(stored));
  return r.success ? { receipt: r.data } : {};
}
