/**
 * The client's Payer: one payment channel to its proxy, client-signed cumulative vouchers.
 *
 * After each answer whose worker-signed receipt checked out, the client prices the usage itself (root prices), writes
 * the receipt and then the next cumulative voucher to its ledger, and only then lets the voucher leave: piggybacked on
 * the next request, or sent on its own (`payments` op) once the client is idle for `flushDelayMs`. An answer whose
 * receipt was refused is never paid (counted and reported instead). On (re)connection the client registers its
 * channel (with a proof signed by the channel key) and re-sends its newest voucher if the proxy lacks it, so a
 * restart on either side loses nothing.
 */
import type { Address, Cell } from "@ton/core";
import type { AnswerCost, Payer, PaymentsCall, SentRequest } from "../client/payer.js";
import { parseSignedReceipt, verifyReceipt } from "../crypto/receipts.js";
import { type PaymentsReply, type ReconcileAnswer } from "../protocol/messages.js";
import { ApiError } from "../protocol/openai.js";
import { STORAGE_RESERVE } from "../chain/contracts/opcodes.js";
import type { ChannelState } from "../chain/contracts/ClientChannel.js";
import { encodeSignedVoucher, signVoucher, voucherCell, type Ed25519Signer } from "../chain/vouchers.js";
import type { Ledger } from "./ledger.js";
import type { FundingStatus } from "./client-channels.js";
import { parseCostFields, type PriceBook } from "./pricing.js";
import { signRegistration } from "./messages.js";
import type { TonAccess } from "./ton.js";
import { silentLogger, type Logger } from "../util/log.js";

export const DEFAULT_FLUSH_DELAY_MS = 200;
/** How long a request waits for the channel registration of a fresh connection. */
const REGISTER_WAIT_MS = 15_000;
/** Chain state shown on /status is re-read at most this often. */
const CHAIN_REFRESH_MS = 2_000;
/** Background re-read of the channel (deposits, the proxy's redemptions) for /status. */
const STATUS_REFRESH_MS = 5_000;

export interface ClientPayerOptions {
  channel: Address;
  /** The proxy contract the channel pays into (part of the registration proof). */
  proxyContract: Address;
  /** The channel's client key (signs vouchers and the registration). */
  signer: Ed25519Signer;
  ledger: Ledger;
  /** The client's node id, as its Hello names it (bound into the registration proof). */
  clientId: string;
  ton?: TonAccess;
  /** TON global id of the network, bound into every voucher (setup passes TonAccess.globalId). */ globalId: number;
  /** With prices, the client checks every cost itself and never signs more than its own computation. */
  prices?: PriceBook;
  flushDelayMs?: number;
  log?: Logger;
  closeLedger?: boolean;
  /**
   * Called (without waiting) whenever what the channel can still pay is known to be under `below`: after an answer is
   * paid, after a chain read, and when a request is refused for funds. The top-up logic (client-channels.ts) decides.
   */
  lowFunds?: { below: bigint; onLow: () => void };
  /** The channel's funding (opening, top-ups, budget: client-channels.ts), shown in status(). */
  funding?: () => FundingStatus;
}

/** How long close() waits to hand the proxy the newest voucher. */
const CLOSE_FLUSH_TIMEOUT_MS = 2_000;
/** Requests whose fate is open are remembered this long, and at most this many (oldest forgotten first). */
const TRACK_MS = 60 * 60_000;
const MAX_TRACKED = 20_000;
/**
 * An abandoned request the proxy has not charged this long after it ended never will be (the proxy settles when the
 * answer ends, and a restarted proxy lists what it settled before dying): it is forgotten then.
 */
const ABANDONED_SETTLE_MS = 30_000;

interface Tracked extends SentRequest {
  at: number;
  /** When the request ended without an answer this client settled (0 while in flight). */
  abandonedAt: number;
  /** Why this client refused to pay its answer: disputed if the proxy charged it anyway. */
  refused?: string;
}

export class ClientPayer implements Payer {
  private readonly log: Logger;
  private readonly key: string;
  private request?: PaymentsCall;
  private chain: Promise<unknown> = Promise.resolve();
  private flushTimer?: NodeJS.Timeout;
  /** What the proxy acknowledged having (its `signed`). */
  private acked = 0n;
  private state?: ChannelState;
  private stateAt = 0;
  private readonly refused = { count: 0, nano: 0n };
  private readonly disputes = { count: 0, nano: 0n };
  private lastError?: string;
  /** Settles when the channel is registered on the current connection (requests wait for it). */
  private registered: Promise<void>;
  private markRegistered!: () => void;
  private refreshTimer?: NodeJS.Timeout;
  /** Sealed requests sent and not settled yet, by request id (insertion order = age). */
  private readonly tracked = new Map<string, Tracked>();
  private reconciling?: Promise<void>;
  private readonly reconciled = { paid: 0, paidNano: 0n, disputed: 0, runs: 0 };

  constructor(private readonly o: ClientPayerOptions) {
    this.log = o.log ?? silentLogger;
    this.key = o.channel.toRawString();
    this.channelText = o.channel.toString();
    this.registered = this.newRegistration();
    // Also settles, when idle, requests whose end was lost (e.g. the connection broke as the answer ended).
    this.refreshTimer = setInterval(() => {
      void this.refreshState(true);
      if (this.hasAbandoned) void this.reconcile().catch((e: Error) => (this.lastError = `reconciling with the proxy: ${e.message}`));
    }, STATUS_REFRESH_MS);
    this.refreshTimer.unref();
    void this.refreshState(true); // /status shows the deposit before the first connection
  }

  private newRegistration(): Promise<void> {
    return new Promise<void>((r) => (this.markRegistered = r));
  }

  private async waitRegistered(ms = REGISTER_WAIT_MS): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((r) => (t = setTimeout(() => r("timeout"), ms)));
    const r = await Promise.race([this.registered.then(() => "ok" as const), timeout]);
    clearTimeout(t);
    if (r === "timeout") {
      throw new ApiError(503, `The payment channel is not registered with the proxy yet${this.lastError ? ` (${this.lastError})` : ""}. Check the client's payments settings and the channel's deposit, then retry.`, "service_unavailable", "payment_channel_unregistered");
    }
  }

  /** The channel address as sent with every request (user-friendly form, computed once). */
  private readonly channelText: string;

  get signed(): bigint {
    return this.o.ledger.latestClientVoucher(this.key)?.cumulativeNano ?? 0n;
  }

  get spent(): bigint {
    return this.o.ledger.spentOf(this.key);
  }

  /** The newest voucher as sent on the wire; encoded once per new voucher, not once per request. */
  private encodedVoucher: { cumulative: bigint; b64: string } | undefined;
  /** The cell of the voucher signed last (built once: signing needs it, and so does encoding). */
  private lastSignedCell: { cumulative: bigint; cell: Cell } | undefined;

  private latestVoucherBase64(): string | undefined {
    const v = this.o.ledger.latestClientVoucher(this.key);
    if (!v) return undefined;
    if (this.encodedVoucher?.cumulative !== v.cumulativeNano) {
      const cell = this.lastSignedCell?.cumulative === v.cumulativeNano ? this.lastSignedCell.cell : voucherCell({ kind: "payment", globalId: this.o.globalId, channel: this.o.channel, cumulative: v.cumulativeNano });
      this.encodedVoucher = { cumulative: v.cumulativeNano, b64: encodeSignedVoucher({ cell, signature: v.signature }).toString("base64") };
    }
    return this.encodedVoucher.b64;
  }

  async onConnected(request: PaymentsCall, session: string): Promise<void> {
    this.request = request;
    this.registered = this.newRegistration();
    await this.chain;
    this.resign();
    const proof = signRegistration(this.o.channel, this.o.proxyContract, this.o.clientId, session, this.o.signer);
    let reply: PaymentsReply;
    try {
      reply = await request({ type: "register", channel: this.o.channel.toString(), proof });
    } catch (e) {
      this.lastError = `registering the channel: ${(e as Error).message}`;
      throw new Error(this.lastError);
    }
    this.acked = 0n;
    this.noteReply(reply);
    this.lastError = undefined;
    if (this.signed > this.acked) await this.flush();
    this.markRegistered();
    // The proxy charged answers this client has not paid (a connection lost at the end of an answer, a restart):
    // settle that now rather than at the first refused request.
    if (BigInt(reply.charged) > this.spent) {
      void this.reconcile().catch((e: Error) => this.log.warn(`reconciling with the proxy failed: ${e.message}`));
    }
    await this.refreshState(true);
  }

  track(requestId: string, sent: SentRequest): void {
    this.tracked.set(requestId, { ...sent, at: Date.now(), abandonedAt: 0 });
    if (this.tracked.size > MAX_TRACKED) this.tracked.delete(this.tracked.keys().next().value!);
  }

  abandon(requestId: string): void {
    const t = this.tracked.get(requestId);
    if (t) t.abandonedAt = Date.now();
  }

  /** Requests whose end this client did not see, still to be settled with the proxy. */
  private get hasAbandoned(): boolean {
    for (const t of this.tracked.values()) if (t.abandonedAt) return true;
    return false;
  }

  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileNow().finally(() => (this.reconciling = undefined));
    return this.reconciling;
  }

  /**
   * Reconciliation: the proxy lists the channel's newest charged answers with their worker-signed receipts. Each one
   * this client has not paid is either paid (a request it sent whose fate it did not learn, with a receipt signed by a
   * worker it sealed to, for the bytes it sent, within its max_tokens) or disputed (the proxy writes it off).
   */
  private async reconcileNow(): Promise<void> {
    if (!this.request) return;
    const request = this.request;
    await this.chain;
    this.reconciled.runs++;
    // Named: the requests whose end this client did not see (found however many answers the channel had since).
    const abandoned = [...this.tracked].filter(([, t]) => t.abandonedAt).map(([id]) => id).slice(-1_024);
    const { answers } = await request({ type: "reconcile", requests: abandoned });
    if (!answers) throw new Error("the proxy's reconciliation reply lists no answers (a proxy that does not reconcile); retrying later");
    const disputes: { requestId: string; reason: string }[] = [];
    const listed = new Set<string>();
    for (const t of this.tracked.keys()) {
      const v = this.tracked.get(t)!;
      if (Date.now() - v.at < TRACK_MS) break;
      this.tracked.delete(t);
    }
    for (const a of answers) {
      const requestId = a.requestId;
      if (this.o.ledger.getReceipt(requestId)) continue; // paid already
      const t = this.tracked.get(requestId);
      listed.add(requestId);
      if (t && !t.abandonedAt) continue; // still in flight here: paid when its answer ends
      const problem = t ? (t.refused ?? this.checkOwed(a, requestId, t)) : "this client has no record of an unsettled request with this id (it refused the answer, or never sent it)";
      if (problem) {
        disputes.push({ requestId, reason: problem });
        this.tracked.delete(requestId);
        continue;
      }
      const usage = { prompt_tokens: a.promptTokens, completion_tokens: a.completionTokens, total_tokens: a.promptTokens + a.completionTokens };
      // The ledger keeps totals only; the split does not matter for what is signed.
      const cost = { prompt_total_cost: "0", completion_total_cost: a.cost, total_cost: a.cost };
      const run = this.chain.then(() => this.pay({ requestId, model: t!.model, usage, cost, receiptOk: true, workerId: (a.receipt as { receipt?: { workerId?: string } })?.receipt?.workerId }));
      this.chain = run.catch(() => undefined);
      await run;
      this.tracked.delete(requestId);
      this.reconciled.paid++;
      this.reconciled.paidNano += BigInt(a.cost);
      this.log.info(`paid answer ${requestId} (${a.cost} nanoTON) on reconciliation: its end never reached this client`);
    }
    for (const [id, t] of this.tracked) if (t.abandonedAt && !listed.has(id) && Date.now() - t.abandonedAt > ABANDONED_SETTLE_MS) this.tracked.delete(id);
    await this.flush();
    if (disputes.length) {
      this.reconciled.disputed += disputes.length;
      this.log.warn(`disputing ${disputes.length} answer(s) the proxy charged: ${disputes.slice(0, 3).map((d) => `${d.requestId}: ${d.reason}`).join("; ")}`);
      this.noteReply(await request({ type: "dispute", requests: disputes }));
    }
  }

  /** Why a charged answer of a request this client sent is not owed, or undefined when its receipt proves it. */
  private checkOwed(a: ReconcileAnswer, requestId: string, t: Tracked): string | undefined {
    let signed;
    try {
      signed = parseSignedReceipt(a.receipt);
    } catch (e) {
      return `no valid worker receipt: ${(e as Error).message}`;
    }
    const r = signed.receipt;
    const signer = t.receiptKeys.findIndex((k) => verifyReceipt(signed, k));
    if (signer < 0) return "the receipt is not signed by a worker the request was sealed to";
    const coefficient = t.coefficients?.[signer];
    if (r.requestId !== requestId || r.model !== t.model || r.requestDigest !== t.requestDigest) return "the receipt is for another request";
    if (r.completionTokens > t.maxTokens) return `the receipt reports ${r.completionTokens} completion tokens for max_tokens ${t.maxTokens}`;
    if (r.promptTokens !== a.promptTokens || r.completionTokens !== a.completionTokens) return "the charged usage differs from the worker's receipt";
    if (r.costNano !== "0" && r.costNano !== a.cost) return `the receipt prices it at ${r.costNano}, the proxy charged ${a.cost}`;
    if (this.o.prices?.has(t.model) && this.o.prices.cost(t.model, r.promptTokens, r.completionTokens, coefficient).total !== BigInt(a.cost)) return "the charge differs from the network's prices at its worker's coefficient";
    return undefined;
  }

  /** A crash between recording a receipt and signing its voucher leaves spent > signed: sign the missing voucher. */
  private resign(): void {
    if (this.spent > this.signed) this.signCumulative(this.spent);
  }

  private noteReply(reply: PaymentsReply): void {
    const s = BigInt(reply.signed);
    if (s > this.acked) this.acked = s;
  }

  private async refreshState(force = false): Promise<void> {
    if (!this.o.ton || (!force && Date.now() - this.stateAt < CHAIN_REFRESH_MS)) return;
    this.stateAt = Date.now();
    try {
      this.state = await this.o.ton.channelState(this.o.channel);
    } catch (e) {
      this.lastError = `reading the channel: ${(e as Error).message}`;
    }
    this.checkLow();
  }

  /** What the channel can still pay, read on chain now (undefined when it cannot be read). */
  async availableNow(): Promise<bigint | undefined> {
    await this.refreshState(true);
    return this.available();
  }

  private checkLow(): void {
    const left = this.available();
    if (this.o.lowFunds && left !== undefined && left < this.o.lowFunds.below) this.o.lowFunds.onLow();
  }

  /** What the channel can still pay: redeemed + balance - reserve - signed. Undefined before the first chain read. */
  private available(): bigint | undefined {
    if (!this.state) return undefined;
    const capacity = this.state.redeemed + this.state.balance - STORAGE_RESERVE;
    return capacity - this.signed;
  }

  async beforeRequest(model: string, maxTokens: number, promptBytes = 0): Promise<Record<string, unknown> | undefined> {
    await this.waitRegistered();
    await this.chain;
    const left = this.available();
    if (left !== undefined && this.o.prices?.has(model)) {
      // What the proxy reserves for it: the prompt, priced by its size, and every token it may produce.
      const min = this.o.prices.maxCost(model, maxTokens, promptBytes);
      if (left < min) {
        await this.refreshState(true);
        const again = this.available() ?? 0n;
        if (again < min) {
          this.o.lowFunds?.onLow();
          throw new ApiError(402, `Insufficient funds: this request (a ${promptBytes}-byte prompt and max_tokens ${maxTokens}) may cost up to ${min} nanoTON and the payment channel has ${again > 0n ? again : 0n} left. ${this.o.lowFunds ? "This client tops its channels up by itself within --max-deposit (its /status shows how: paymentsByProxy funding); retry shortly" : 'Deposit more with "cocoon client deposit --amount <TON>"'}, shorten the prompt or lower max_tokens.`, "insufficient_quota", "insufficient_funds");
        }
      }
    }
    await this.o.ledger.durable(); // never hand out a voucher that a crash could make this ledger forget
    const voucher = this.latestVoucherBase64();
    return { channel: this.channelText, ...(voucher ? { voucher } : {}) };
  }

  afterAnswer(a: AnswerCost): Promise<void> {
    // Resolves once the receipt and its voucher are on disk (with the other answers of this event-loop turn: group
    // commit): the app gets no answer this ledger could forget. The next payment does not wait for that fsync.
    // Forgotten as an open request only once paid (in the ledger): a reconciliation in between must not take a
    // request it sent for one it never sent.
    const run = this.chain.then(() => {
      const refused = this.pay(a);
      const t = this.tracked.get(a.requestId);
      if (refused === undefined || !t) this.tracked.delete(a.requestId);
      else {
        // Not paid: if the proxy charged it anyway (it should not: one judgment), reconciliation disputes it.
        t.refused = refused;
        t.abandonedAt = Date.now();
      }
    });
    this.chain = run.catch(() => undefined);
    return run.then(() => this.o.ledger.durable());
  }

  /** Pays an answer (receipt, then voucher, in one ledger write); returns why not when it does not pay it. */
  private pay(a: AnswerCost): string | undefined {
    let cost: bigint;
    try {
      cost = parseCostFields(a.cost).total;
    } catch (e) {
      this.lastError = `answer ${a.requestId}: ${(e as Error).message}`;
      this.log.warn(`not paying ${a.requestId}: ${(e as Error).message}`);
      return `its cost was not readable: ${(e as Error).message}`;
    }
    if (!a.receiptOk) {
      this.refused.count++;
      this.refused.nano += cost;
      this.log.warn(`not paying ${a.requestId} (${cost} nanoTON): its usage receipt was refused`);
      return "this client refused its usage receipt";
    }
    if (this.o.prices) {
      const own = this.o.prices.cost(a.model, a.usage.prompt_tokens, a.usage.completion_tokens, a.coefficient).total;
      if (own !== cost) {
        this.disputes.count++;
        this.disputes.nano += cost > own ? cost - own : own - cost;
        this.log.warn(`the proxy priced ${a.requestId} at ${cost} nanoTON, the root's prices give ${own}; signing ${own < cost ? own : cost}`);
        if (own < cost) cost = own;
      }
    }
    // The receipt and the voucher that pays it are written together.
    this.o.ledger.atomically(() => {
      this.o.ledger.recordReceipt({
        requestId: a.requestId, model: a.model, promptTokens: a.usage.prompt_tokens, completionTokens: a.usage.completion_tokens,
        costNano: cost, workerId: a.workerId ?? "unknown", channel: this.key,
      });
      this.signCumulative(this.spent);
    });
    this.scheduleFlush();
    this.checkLow();
    void this.refreshState();
  }

  private signCumulative(cumulative: bigint): void {
    if (cumulative <= this.signed) return;
    const sv = signVoucher({ kind: "payment", globalId: this.o.globalId, channel: this.o.channel, cumulative }, this.o.signer);
    this.o.ledger.recordClientVoucher({ key: this.key, cumulativeNano: cumulative, signature: sv.signature, seq: 0 });
    this.lastSignedCell = { cumulative, cell: sv.cell };
  }

  private scheduleFlush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = setTimeout(() => void this.flush().catch(() => undefined), this.o.flushDelayMs ?? DEFAULT_FLUSH_DELAY_MS);
    this.flushTimer.unref();
  }

  /** Hands the newest voucher to the proxy now (if it lacks it). */
  async flush(): Promise<void> {
    await this.o.ledger.durable();
    const voucher = this.latestVoucherBase64();
    if (!voucher || !this.request || this.signed <= this.acked) return;
    try {
      this.noteReply(await this.request({ type: "voucher", voucher }));
    } catch (e) {
      this.lastError = `handing the voucher to the proxy: ${(e as Error).message}`;
      throw e;
    }
  }

  status(): Record<string, unknown> {
    const s = this.state;
    return {
      network: this.o.ton?.network ?? "unknown",
      channel: this.o.channel.toString(),
      proxyContract: this.o.proxyContract.toString(),
      deposited: (s?.deposited ?? 0n).toString(),
      spent: this.spent.toString(),
      signed: this.signed.toString(),
      acknowledgedByProxy: this.acked.toString(),
      redeemed: (s?.redeemed ?? 0n).toString(),
      ...(s ? { channelBalance: s.balance.toString(), available: ((this.available() ?? 0n) > 0n ? this.available()! : 0n).toString(), channelStatus: ["open", "closing", "closed"][s.status] } : {}),
      refusedReceipts: { count: this.refused.count, nano: this.refused.nano.toString() },
      reconciliation: { runs: this.reconciled.runs, paid: this.reconciled.paid, paidNano: this.reconciled.paidNano.toString(), disputed: this.reconciled.disputed, unsettledRequests: this.tracked.size },
      ...(this.disputes.count ? { disputes: { count: this.disputes.count, nano: this.disputes.nano.toString() } } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
      ...(this.o.funding ? { funding: this.o.funding() } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    await this.chain;
    // Best effort and bounded: a proxy that is gone gets the voucher with the next request after a restart.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush().catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, CLOSE_FLUSH_TIMEOUT_MS)))]);
    clearTimeout(timer);
    if (this.o.closeLedger) this.o.ledger.close();
  }
}
