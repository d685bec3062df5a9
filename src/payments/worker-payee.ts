/**
 * The worker's Payee: announces its payout address, prices its receipts (root prices), keeps the proxy-signed
 * cumulative payout vouchers it receives (ledger first) and claims them on chain in batches — when the unclaimed
 * amount passes a threshold or on a timer — with its own wallet. Vouchers are cumulative: a claim pays only the
 * difference to what the proxy contract already paid, so a replayed or older voucher can never pay twice.
 */
import type { Address } from "@ton/core";
import type { Payee } from "../worker/worker.js";
import { PROXY_OP_VALUE, claimPayoutBody } from "../chain/contracts/ProxyContract.js";
import { verifySignedVoucher, voucherCell } from "../chain/vouchers.js";
import type { Ledger } from "./ledger.js";
import type { PriceBook } from "./pricing.js";
import { decodeVoucherBase64 } from "./messages.js";
import type { TonAccess } from "./ton.js";
import type { WalletService } from "../chain/wallet.js";
import { silentLogger, type Logger } from "../util/log.js";
import type { PayoutMessage, WorkerPayments } from "../protocol/messages.js";

/** Defaults: claim at 1 TON unclaimed or every 60 s. */
export const DEFAULT_CLAIM_THRESHOLD = 1_000_000_000n;
export const DEFAULT_CLAIM_INTERVAL_MS = 60_000;

export interface WorkerPayeeOptions {
  ton: TonAccess;
  /** The worker's own wallet: payout address, pays the claim's gas. */
  wallet: WalletService;
  proxyContract: Address;
  ledger: Ledger;
  prices?: PriceBook;
  claimThreshold?: bigint;
  claimIntervalMs?: number;
  log?: Logger;
  closeLedger?: boolean;
}

export class WorkerPayee implements Payee {
  private readonly log: Logger;
  private readonly key: string;
  private proxyKey?: Buffer;
  private timer?: NodeJS.Timeout;
  private claiming?: Promise<void>;
  private paid = 0n;
  private walletBalance?: bigint;
  private accrued = 0n;
  private refusedVouchers = 0;
  private lastError?: string;
  claims = 0;

  private constructor(private readonly o: WorkerPayeeOptions) {
    this.log = o.log ?? silentLogger;
    this.key = o.proxyContract.toRawString();
  }

  /** Reads the proxy contract's payout key (to check vouchers) and what it already paid, then starts the timer. */
  static async start(o: WorkerPayeeOptions): Promise<WorkerPayee> {
    const p = new WorkerPayee(o);
    p.proxyKey = (await o.ton.proxyConfig(o.proxyContract)).signingKey;
    await p.refresh().catch(() => undefined);
    await p.recoverPending();
    p.timer = setInterval(() => void p.claim(true).catch(() => undefined), o.claimIntervalMs ?? DEFAULT_CLAIM_INTERVAL_MS);
    p.timer.unref();
    return p;
  }

  announce(): WorkerPayments {
    return { payoutAddress: this.o.wallet.address.toString() };
  }

  costOf(model: string, promptTokens: number, completionTokens: number, coefficient?: number): bigint {
    if (!this.o.prices?.has(model)) return 0n;
    const total = this.o.prices.cost(model, promptTokens, completionTokens, coefficient).total;
    this.accrued += this.o.prices.workerShare(total);
    return total;
  }

  /** Verifies and stores a payout voucher; returns false (and says why in the log) when it is refused. */
  receiveVoucher(b64: unknown): boolean {
    try {
      if (!this.proxyKey) throw new Error("the proxy contract's key is not known yet");
      const { signed } = decodeVoucherBase64(b64, "payout voucher");
      const v = verifySignedVoucher(signed, { kind: "payout", publicKey: this.proxyKey, contract: this.o.proxyContract, worker: this.o.wallet.address, globalId: this.o.ton.globalId });
      const latest = this.o.ledger.latestPayoutVoucher(this.key)?.cumulativeNano ?? 0n;
      if (v.cumulative <= latest) return true;
      this.o.ledger.recordPayoutVoucher({ key: this.key, cumulativeNano: v.cumulative, signature: signed.signature, seq: 0 });
      if (v.cumulative - this.paid >= (this.o.claimThreshold ?? DEFAULT_CLAIM_THRESHOLD)) void this.claim(false).catch(() => undefined);
      return true;
    } catch (e) {
      this.refusedVouchers++;
      this.lastError = `payout voucher refused: ${(e as Error).message}`;
      this.log.warn(this.lastError);
      return false;
    }
  }

  onPayout(_proxy: string, message: PayoutMessage): void {
    this.receiveVoucher(message.voucher);
  }

  get credited(): bigint {
    return this.o.ledger.latestPayoutVoucher(this.key)?.cumulativeNano ?? 0n;
  }

  private async refresh(): Promise<void> {
    const [paid, balance] = await Promise.all([this.o.ton.paidTo(this.o.proxyContract, this.o.wallet.address), this.o.wallet.balance()]);
    this.paid = paid;
    this.walletBalance = balance;
  }

  /** Claims the newest voucher on chain when the unclaimed amount passes the threshold (or any, if forced). */
  claim(force: boolean): Promise<void> {
    if (this.claiming) return this.claiming;
    const run = this.claimNow(force).catch((e: Error) => {
      this.lastError = `claim: ${e.message}`;
      this.log.warn(`claiming the payout failed: ${e.message}; retrying on the next timer`);
      throw e;
    });
    this.claiming = run.finally(() => (this.claiming = undefined));
    return this.claiming;
  }

  private async claimNow(force: boolean): Promise<void> {
    const v = this.o.ledger.latestPayoutVoucher(this.key);
    if (!v) return;
    await this.refresh();
    const unclaimed = v.cumulativeNano - this.paid;
    if (unclaimed <= 0n || (!force && unclaimed < (this.o.claimThreshold ?? DEFAULT_CLAIM_THRESHOLD))) return;
    const id = `payout:${this.key}:${v.cumulativeNano}:${Date.now()}`;
    this.o.ledger.recordSettlement({ txHash: id, kind: "payout", counterparty: this.key, amountNano: unclaimed, status: "pending" });
    await this.o.ledger.durable(); // on disk before the transaction leaves: a restart then finds and checks it
    const cell = voucherCell({ kind: "payout", globalId: this.o.ton.globalId, proxy: this.o.proxyContract, worker: this.o.wallet.address, cumulative: v.cumulativeNano });
    await this.o.wallet.sendBatch([{ to: this.o.proxyContract, value: PROXY_OP_VALUE, body: claimPayoutBody({ cell, signature: v.signature }) }]);
    this.claims++;
    await this.confirm(id, v.cumulativeNano);
  }

  private async confirm(id: string, cumulative: bigint): Promise<void> {
    await this.refresh();
    if (this.paid >= cumulative) {
      this.o.ledger.updateSettlement(id, "confirmed");
      this.log.info(`claimed payout up to ${cumulative} nanoTON from ${this.o.proxyContract.toString()}`);
    } else {
      this.o.ledger.updateSettlement(id, "failed");
      this.lastError = `claim up to ${cumulative} nanoTON did not apply (paid on chain: ${this.paid}); the proxy contract may lack free balance — it will be retried`;
      this.log.warn(this.lastError);
    }
  }

  private async recoverPending(): Promise<void> {
    for (const s of this.o.ledger.pendingSettlements()) {
      if (s.kind !== "payout") continue;
      const parts = s.txHash.split(":"); // payout:<workchain>:<hex>:<cumulative>:<time>
      if (parts.length !== 5 || !/^[0-9]+$/.test(parts[3]!)) continue;
      await this.confirm(s.txHash, BigInt(parts[3]!)).catch(() => undefined);
    }
  }

  status(): Record<string, unknown> {
    return {
      network: this.o.ton.network,
      payoutAddress: this.o.wallet.address.toString({ bounceable: false }),
      proxyContract: this.o.proxyContract.toString(),
      earned: this.credited.toString(),
      paid: this.paid.toString(),
      unclaimed: (this.credited > this.paid ? this.credited - this.paid : 0n).toString(),
      accruedThisRun: this.accrued.toString(),
      ...(this.walletBalance !== undefined ? { walletBalance: this.walletBalance.toString() } : {}),
      claims: this.claims,
      ...(this.refusedVouchers ? { refusedVouchers: this.refusedVouchers } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.claiming?.catch(() => undefined);
    if (this.o.closeLedger) this.o.ledger.close();
  }
}
