/**
 * The payment ledger: a SQLite file (WAL, synchronous = FULL) in which client, proxy and worker record money facts
 * BEFORE acknowledging them: usage receipts, client-signed cumulative vouchers, proxy-signed payout vouchers and
 * on-chain settlements. Every `record*` call is atomic and visible at once; it is DURABLE (survives a crash or power
 * loss) once `durable()` resolves or `flush()` returns. Group commit: the writes of one event-loop turn share one
 * transaction, committed right after the turn, and one fsync of the WAL, done on libuv's thread pool so that the
 * event loop never waits for the disk; callers await `durable()` before they acknowledge.
 * Sums and latest vouchers are cached in memory (write-through), since every request reads them.
 *
 * Inserts are idempotent: receipts are keyed by request id, vouchers by (channel|worker, cumulative), settlements by
 * tx hash. Recording the same fact twice is a no-op (`inserted: false`) and never counts twice; recording a DIFFERENT
 * fact under the same key throws a LedgerConflictError (it means a bug or a forged message — do not acknowledge).
 */
import Database from "better-sqlite3";
import { closeSync, fdatasync, fdatasyncSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import { migrateLedger } from "./ledgerSchema.js";

/** Amounts are nanoTON below 2^128 (far above any TON supply; keeps keys fixed-width). */
const MAX_NANO = 2n ** 128n;
/** Width of zero-padded cumulative keys: 2^128 has 39 decimal digits. */
const CUMULATIVE_KEY_DIGITS = 40;

export type SettlementKind = "redeem" | "payout" | "deposit" | "withdraw" | "fee";
export type SettlementStatus = "pending" | "confirmed" | "failed";
const SETTLEMENT_KINDS: readonly SettlementKind[] = ["redeem", "payout", "deposit", "withdraw", "fee"];

export interface UsageReceiptInput {
  requestId: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  /** nanoTON the client pays for this request. */
  costNano: bigint;
  /** nanoTON the worker earns (cost minus the proxy's fee); defaults to costNano. */
  workerEarnNano?: bigint;
  workerId: string;
  /** Client channel address this request is charged to, when known. */
  channel?: string;
  /**
   * The worker-signed receipt as received (JSON of {receipt, signature}). The proxy's meter stores it with each charge
   * and hands it back to the client in reconciliation (src/payments/proxy-meter.ts answersToReconcile), where the
   * client checks it before paying for an answer whose end it never saw; the client's own ledger leaves it out.
   */
  receipt?: Uint8Array;
  /** When the request started (ms since epoch); defaults to now. */
  startedAt?: number;
}

export interface UsageReceipt extends Required<Omit<UsageReceiptInput, "receipt">> {
  receipt: Buffer | null;
  recordedAt: number;
}

export interface VoucherInput {
  /** Channel address (client vouchers) or worker address (payout vouchers). */
  key: string;
  cumulativeNano: bigint;
  signature: Uint8Array;
  seq: number;
}

export interface Voucher {
  key: string;
  cumulativeNano: bigint;
  signature: Buffer;
  seq: number;
  recordedAt: number;
}

export interface SettlementInput {
  txHash: string;
  kind: SettlementKind;
  counterparty: string;
  amountNano: bigint;
  status?: SettlementStatus;
}

export interface Settlement extends Required<SettlementInput> {
  createdAt: number;
  updatedAt: number;
}

export interface LedgerTotals {
  /** Sum of receipt costs (what clients were charged). */
  spent: bigint;
  /** Sum of worker earnings in receipts. */
  earned: bigint;
  /** spent - earned: the proxy's fees. */
  fees: bigint;
  /** Confirmed on-chain redemptions of client vouchers. */
  redeemed: bigint;
  /** Confirmed on-chain payouts to workers. */
  paid: bigint;
  /** Confirmed fee transfers (e.g. commission withdrawals). */
  feesSettled: bigint;
  deposited: bigint;
  withdrawn: bigint;
}

export interface Unsettled {
  /** Channel or worker address. */
  key: string;
  /** Latest signed cumulative amount. */
  signed: bigint;
  /** Confirmed on chain. */
  settled: bigint;
  /** Submitted, not yet confirmed. */
  pending: bigint;
  /** signed - settled - pending (never negative). */
  unsettled: bigint;
}

export class LedgerConflictError extends Error {}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

function settle(waiters: Waiter[], err?: Error): void {
  for (const w of waiters) err ? w.reject(err) : w.resolve();
}

const syncError = (e: Error) => new Error(`the payment ledger could not be synced to disk (its last writes may be lost on power failure): ${e.message}`);

function checkNano(v: bigint, what: string): string {
  if (typeof v !== "bigint") throw new TypeError(`${what} must be a bigint amount of nanoTON`);
  if (v < 0n || v >= MAX_NANO) throw new RangeError(`${what} must be between 0 and 2^128 nanoTON, got ${v}`);
  return v.toString();
}

function checkText(v: string, what: string, allowEmpty = false): string {
  if (typeof v !== "string" || (!allowEmpty && v.length === 0) || v.length > 1024) {
    throw new TypeError(`${what} must be a ${allowEmpty ? "" : "non-empty "}string of at most 1024 characters`);
  }
  return v;
}

function checkCount(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${what} must be a non-negative integer, got ${v}`);
  return v;
}

const cumulativeKey = (v: bigint) => v.toString().padStart(CUMULATIVE_KEY_DIGITS, "0");

type VoucherTable = "client_vouchers" | "payout_vouchers";
const VOUCHER_KEY_COLUMN: Record<VoucherTable, string> = { client_vouchers: "channel", payout_vouchers: "worker" };

export class Ledger {
  private readonly db: Database.Database;
  /** Compiled statements by SQL text: every request touches the ledger, so compile each statement once. */
  private readonly statements = new Map<string, Database.Statement>();

  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  /** Totals by name and scope, and latest vouchers by table and key, as in the database (including the open group). */
  private readonly totalsCache = new Map<string, bigint>();
  private readonly latestCache = new Map<string, Voucher | null>();
  /** The group commit scheduled for the end of this event-loop turn, and who waits for it. */
  private commitScheduled?: NodeJS.Immediate;
  private waiters: Waiter[] = [];
  /** Committed groups not yet covered by a started fsync, the fsync in flight (one at a time), and who waits. */
  private unsynced = false;
  private syncInFlight?: Promise<void>;
  private syncWaiters: Waiter[] = [];
  /** The WAL file, kept open to fsync it off the event loop (undefined for ":memory:"). */
  private walFd?: number;
  /** Writes, group commits and WAL fsyncs since opening (writes / commits = the average group size). */
  readonly stats = { writes: 0, commits: 0, syncs: 0 };

  private constructor(db: Database.Database, private readonly walPath?: string) {
    this.db = db;
  }

  /** Runs fn atomically inside the open group transaction (opening one if needed); on error, fn's writes are undone. */
  private write<T>(fn: () => T): T {
    if (!this.db.inTransaction) {
      this.stmt("BEGIN IMMEDIATE").run();
      this.commitScheduled = setImmediate(() => this.commitGroup(false));
    }
    this.stats.writes++;
    this.stmt("SAVEPOINT w").run(); // nests: atomically() around record*() calls
    try {
      const result = fn();
      this.stmt("RELEASE w").run();
      return result;
    } catch (e) {
      this.stmt("ROLLBACK TO w").run();
      this.stmt("RELEASE w").run();
      this.clearCaches();
      throw e;
    }
  }

  private clearCaches(): void {
    this.totalsCache.clear();
    this.latestCache.clear();
  }

  /**
   * Commits the open group. COMMIT only writes the WAL (synchronous = NORMAL), so the event loop never waits for the
   * disk; the WAL is then fsynced on libuv's thread pool (`sync` false) or right here (`sync` true), and the group's
   * waiters are released once an fsync that started after their COMMIT has returned: the same guarantee as
   * synchronous = FULL, without the stall. One fsync is in flight at a time; the groups committed meanwhile share the
   * next one, so under load the disk sees one fsync per fsync-latency, not one per group.
   */
  private commitGroup(sync: boolean): void {
    if (this.commitScheduled) clearImmediate(this.commitScheduled);
    this.commitScheduled = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    if (!this.db.open || !this.db.inTransaction) {
      this.syncWaiters.push(...waiters);
      return sync ? this.syncNow() : this.maybeSync();
    }
    try {
      this.stats.commits++;
      this.stmt("COMMIT").run();
    } catch (e) {
      if (this.db.inTransaction) this.stmt("ROLLBACK").run();
      this.clearCaches();
      const err = new Error(`the payment ledger could not be written (its last writes were undone, nothing was acknowledged): ${(e as Error).message}`);
      settle(waiters, err);
      if (sync) throw err;
      return;
    }
    this.unsynced = true;
    this.syncWaiters.push(...waiters);
    if (sync) this.syncNow();
    else this.maybeSync();
  }

  /** fsyncs the WAL here and now: everything committed so far is durable when this returns. */
  private syncNow(): void {
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    if (this.walPath && this.unsynced && this.db.open) {
      this.walFd ??= openSync(this.walPath, "r+");
      this.stats.syncs++;
      fdatasyncSync(this.walFd);
    }
    this.unsynced = false;
    settle(waiters);
  }

  /** Starts an fsync of the WAL on the thread pool unless one is in flight (its end starts the next one). */
  private maybeSync(): void {
    if (this.syncInFlight) return;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    if (!this.unsynced || !this.walPath || !this.db.open) {
      this.unsynced = false;
      return settle(waiters);
    }
    this.unsynced = false;
    this.walFd ??= openSync(this.walPath, "r+");
    this.stats.syncs++;
    // fdatasync, as SQLite itself syncs its WAL on Linux: the data and the size, not the timestamps.
    const done = new Promise<void>((resolve, reject) => fdatasync(this.walFd!, (e) => (e ? reject(syncError(e)) : resolve())));
    this.syncInFlight = done;
    done.then(
      () => settle(waiters),
      (e: Error) => settle(waiters, e),
    ).finally(() => {
      this.syncInFlight = undefined;
      this.maybeSync();
    });
  }

  /** Commits what was written so far and fsyncs it before returning. Use before an effect outside this process. */
  flush(): void {
    this.commitGroup(true);
  }

  /** Resolves once every write made so far is on disk (at the end of this event-loop turn, with the others). */
  durable(): Promise<void> {
    if (this.db.inTransaction) return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    if (this.unsynced) return new Promise((resolve, reject) => this.syncWaiters.push({ resolve, reject }));
    return this.syncInFlight ?? Promise.resolve();
  }

  /** Opens (creating and migrating) the ledger at `path`; ":memory:" gives a throwaway ledger for tests. */
  static open(path: string): Ledger {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(path);
    } catch (e) {
      throw new Error(`cannot open the payment ledger ${path}: ${(e as Error).message}`);
    }
    try {
      db.pragma("journal_mode = WAL");
      // NORMAL: COMMIT writes the WAL without fsync; commitGroup() fsyncs the WAL itself, off the event loop.
      db.pragma("synchronous = NORMAL");
      db.pragma("foreign_keys = ON");
      db.pragma("busy_timeout = 5000");
      migrateLedger(db);
    } catch (e) {
      db.close();
      throw new Error(`cannot use the payment ledger ${path}: ${(e as Error).message}`);
    }
    return new Ledger(db, path === ":memory:" ? undefined : `${path}-wal`);
  }

  private addTotal(name: string, scope: string, delta: bigint): void {
    if (delta === 0n) return;
    const next = this.total(name, scope) + delta;
    this.stmt(`INSERT OR REPLACE INTO totals (name, scope, value) VALUES (?, ?, ?)`).run(name, scope, next.toString());
    this.totalsCache.set(`${name}\0${scope}`, next);
  }

  private total(name: string, scope = ""): bigint {
    const key = `${name}\0${scope}`;
    let v = this.totalsCache.get(key);
    if (v === undefined) {
      const row = this.stmt(`SELECT value FROM totals WHERE name = ? AND scope = ?`).get(name, scope) as { value: string } | undefined;
      v = BigInt(row?.value ?? "0");
      this.totalsCache.set(key, v);
    }
    return v;
  }

  /** Runs fn atomically: all of its writes or none (and, like every write, durable with its group). */
  atomically<T>(fn: () => T): T {
    return this.write(fn);
  }

  /** Records a usage receipt durably. Returns inserted=false when the same receipt was already recorded. */
  recordReceipt(r: UsageReceiptInput): { inserted: boolean } {
    const requestId = checkText(r.requestId, "requestId");
    const model = checkText(r.model, "model");
    const workerId = checkText(r.workerId, "workerId");
    const channel = checkText(r.channel ?? "", "channel", true);
    const prompt = checkCount(r.promptTokens, "promptTokens");
    const completion = checkCount(r.completionTokens, "completionTokens");
    const cost = checkNano(r.costNano, "costNano");
    const earnValue = r.workerEarnNano ?? r.costNano;
    const earn = checkNano(earnValue, "workerEarnNano");
    if (earnValue > r.costNano) throw new RangeError(`workerEarnNano (${earnValue}) cannot exceed costNano (${r.costNano})`);
    const now = Date.now();
    const startedAt = r.startedAt ?? now;
    return this.write(() => {
      const existing = this.stmt(`SELECT model, prompt_tokens, completion_tokens, cost_nano, worker_earn_nano, worker_id, channel
        FROM receipts WHERE request_id = ?`).get(requestId) as Record<string, unknown> | undefined;
      if (existing) {
        const same = existing.model === model && existing.prompt_tokens === prompt && existing.completion_tokens === completion &&
          existing.cost_nano === cost && existing.worker_earn_nano === earn && existing.worker_id === workerId && existing.channel === channel;
        if (!same) {
          throw new LedgerConflictError(`request ${requestId} already has a different usage receipt (cost ${existing.cost_nano} nanoTON, ` +
            `${existing.prompt_tokens}+${existing.completion_tokens} tokens); refusing to record a second one`);
        }
        return { inserted: false };
      }
      this.stmt(`INSERT INTO receipts (request_id, model, prompt_tokens, completion_tokens, cost_nano, worker_earn_nano,
        worker_id, channel, receipt, started_at, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(requestId, model, prompt, completion, cost, earn, workerId, channel, r.receipt ? Buffer.from(r.receipt) : null, startedAt, now);
      this.addTotal("spent", "", r.costNano);
      this.addTotal("earned", "", earnValue);
      this.addTotal("earned", workerId, earnValue);
      if (channel) this.addTotal("spent", channel, r.costNano);
      return { inserted: true };
    });
  }

  getReceipt(requestId: string): UsageReceipt | undefined {
    const row = this.stmt(`SELECT * FROM receipts WHERE request_id = ?`).get(requestId) as Record<string, any> | undefined;
    return row ? receiptOfRow(row) : undefined;
  }

  /** The newest receipts of a channel that were not written off, newest first (reconciliation with a client). */
  recentReceipts(channel: string, limit: number): UsageReceipt[] {
    const rows = this.stmt(`SELECT r.* FROM receipts r LEFT JOIN write_offs w ON w.request_id = r.request_id
      WHERE r.channel = ? AND w.request_id IS NULL ORDER BY r.recorded_at DESC, r.rowid DESC LIMIT ?`).all(channel, limit) as Record<string, any>[];
    return rows.map(receiptOfRow);
  }

  /** The receipts of these requests charged to a channel and not written off (reconciliation of named requests). */
  receiptsOf(channel: string, requestIds: readonly string[]): UsageReceipt[] {
    const out: UsageReceipt[] = [];
    const stmt = this.stmt(`SELECT r.* FROM receipts r LEFT JOIN write_offs w ON w.request_id = r.request_id
      WHERE r.request_id = ? AND r.channel = ? AND w.request_id IS NULL`);
    for (const id of requestIds) {
      const row = stmt.get(id, channel) as Record<string, any> | undefined;
      if (row) out.push(receiptOfRow(row));
    }
    return out;
  }

  /**
   * Writes off a charged answer the client disputes: it no longer counts as owed by the channel (the proxy bears it;
   * the worker keeps its credit). Idempotent per request; only a receipt of that channel can be written off.
   */
  recordWriteOff(w: { requestId: string; channel: string; reason: string }): { inserted: boolean; amountNano: bigint } {
    const requestId = checkText(w.requestId, "requestId");
    const channel = checkText(w.channel, "channel");
    return this.write(() => {
      const r = this.stmt(`SELECT cost_nano FROM receipts WHERE request_id = ? AND channel = ?`).get(requestId, channel) as { cost_nano: string } | undefined;
      if (!r) return { inserted: false, amountNano: 0n };
      const done = this.stmt(`SELECT 1 FROM write_offs WHERE request_id = ?`).get(requestId);
      if (done) return { inserted: false, amountNano: 0n };
      this.stmt(`INSERT INTO write_offs (request_id, channel, amount_nano, reason, recorded_at) VALUES (?, ?, ?, ?, ?)`)
        .run(requestId, channel, r.cost_nano, w.reason.slice(0, 500), Date.now());
      const amount = BigInt(r.cost_nano);
      this.addTotal("written_off", channel, amount);
      this.addTotal("written_off", "", amount);
      return { inserted: true, amountNano: amount };
    });
  }

  /** Sum of written-off costs, ledger-wide or of one channel. */
  writtenOffOf(scope = ""): bigint {
    return this.total("written_off", scope);
  }

  countReceipts(): number {
    return (this.stmt(`SELECT COUNT(*) AS n FROM receipts`).get() as { n: number }).n;
  }

  private recordVoucher(table: VoucherTable, v: VoucherInput): { inserted: boolean } {
    const col = VOUCHER_KEY_COLUMN[table];
    const key = checkText(v.key, col);
    const cumulative = checkNano(v.cumulativeNano, "cumulativeNano");
    const seq = checkCount(v.seq, "seq");
    if (!(v.signature instanceof Uint8Array) || v.signature.length === 0) throw new TypeError("signature must be non-empty bytes");
    const sig = Buffer.from(v.signature);
    const now = Date.now();
    return this.write(() => {
      const existing = this.stmt(`SELECT signature, seq FROM ${table} WHERE ${col} = ? AND cumulative_key = ?`)
        .get(key, cumulativeKey(v.cumulativeNano)) as { signature: Buffer; seq: number } | undefined;
      if (existing) {
        if (!existing.signature.equals(sig) || existing.seq !== seq) {
          throw new LedgerConflictError(`a different voucher for ${col} ${key} at cumulative ${cumulative} nanoTON is already recorded`);
        }
        return { inserted: false };
      }
      this.stmt(`INSERT INTO ${table} (${col}, cumulative_nano, cumulative_key, signature, seq, recorded_at) VALUES (?, ?, ?, ?, ?, ?)`)
        .run(key, cumulative, cumulativeKey(v.cumulativeNano), sig, seq, now);
      const cacheKey = `${table}\0${key}`;
      const latest = this.latestCache.get(cacheKey);
      if (latest === null || (latest && v.cumulativeNano > latest.cumulativeNano)) {
        this.latestCache.set(cacheKey, { key, cumulativeNano: v.cumulativeNano, signature: sig, seq, recordedAt: now });
      }
      return { inserted: true };
    });
  }

  private latestVoucher(table: VoucherTable, key: string): Voucher | undefined {
    const cacheKey = `${table}\0${key}`;
    const cached = this.latestCache.get(cacheKey);
    if (cached !== undefined) return cached ?? undefined;
    const col = VOUCHER_KEY_COLUMN[table];
    const row = this.stmt(`SELECT * FROM ${table} WHERE ${col} = ? ORDER BY cumulative_key DESC LIMIT 1`).get(key) as Record<string, any> | undefined;
    const v = row ? { key: row[col], cumulativeNano: BigInt(row.cumulative_nano), signature: row.signature, seq: row.seq, recordedAt: row.recorded_at } : null;
    this.latestCache.set(cacheKey, v);
    return v ?? undefined;
  }

  /** A client-signed cumulative voucher for `key` = channel address. */
  recordClientVoucher(v: VoucherInput): { inserted: boolean } {
    return this.recordVoucher("client_vouchers", v);
  }

  /** The client voucher with the highest cumulative amount on `channel`. */
  latestClientVoucher(channel: string): Voucher | undefined {
    return this.latestVoucher("client_vouchers", channel);
  }

  /** A proxy-signed cumulative payout voucher for `key` = worker address. */
  recordPayoutVoucher(v: VoucherInput): { inserted: boolean } {
    return this.recordVoucher("payout_vouchers", v);
  }

  latestPayoutVoucher(worker: string): Voucher | undefined {
    return this.latestVoucher("payout_vouchers", worker);
  }

  private applySettlementTotals(kind: SettlementKind, counterparty: string, amount: bigint, status: SettlementStatus, sign: 1n | -1n): void {
    const name = status === "confirmed" ? kind : status === "pending" ? `${kind}_pending` : undefined;
    if (!name) return;
    this.addTotal(name, "", sign * amount);
    this.addTotal(name, counterparty, sign * amount);
  }

  /** Records an on-chain settlement (usually `pending` right after sending, then `confirmed` via updateSettlement). */
  recordSettlement(s: SettlementInput): { inserted: boolean } {
    const txHash = checkText(s.txHash, "txHash");
    if (!SETTLEMENT_KINDS.includes(s.kind)) throw new TypeError(`settlement kind must be one of ${SETTLEMENT_KINDS.join(", ")}`);
    const counterparty = checkText(s.counterparty, "counterparty");
    const amount = checkNano(s.amountNano, "amountNano");
    const status = s.status ?? "pending";
    if (!["pending", "confirmed", "failed"].includes(status)) throw new TypeError("settlement status must be pending, confirmed or failed");
    return this.write(() => {
      const existing = this.stmt(`SELECT kind, counterparty, amount_nano FROM settlements WHERE tx_hash = ?`).get(txHash) as
        { kind: string; counterparty: string; amount_nano: string } | undefined;
      if (existing) {
        if (existing.kind !== s.kind || existing.counterparty !== counterparty || existing.amount_nano !== amount) {
          throw new LedgerConflictError(`settlement ${txHash} is already recorded with different details`);
        }
        return { inserted: false };
      }
      const now = Date.now();
      this.stmt(`INSERT INTO settlements (tx_hash, kind, counterparty, amount_nano, status, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)`).run(txHash, s.kind, counterparty, amount, status, now, now);
      this.applySettlementTotals(s.kind, counterparty, s.amountNano, status, 1n);
      return { inserted: true };
    });
  }

  /** Moves a settlement from pending to confirmed or failed. A confirmed settlement is final. */
  updateSettlement(txHash: string, status: SettlementStatus): void {
    this.write(() => {
      const row = this.stmt(`SELECT kind, counterparty, amount_nano, status FROM settlements WHERE tx_hash = ?`).get(txHash) as
        { kind: SettlementKind; counterparty: string; amount_nano: string; status: SettlementStatus } | undefined;
      if (!row) throw new Error(`no settlement with tx hash ${txHash} is recorded; record it first with recordSettlement`);
      if (row.status === status) return;
      if (row.status === "confirmed") {
        throw new LedgerConflictError(`settlement ${txHash} is already confirmed; it cannot become ${status}`);
      }
      const amount = BigInt(row.amount_nano);
      this.applySettlementTotals(row.kind, row.counterparty, amount, row.status, -1n);
      this.applySettlementTotals(row.kind, row.counterparty, amount, status, 1n);
      this.stmt(`UPDATE settlements SET status = ?, updated_at = ? WHERE tx_hash = ?`).run(status, Date.now(), txHash);
    });
  }

  getSettlement(txHash: string): Settlement | undefined {
    const row = this.stmt(`SELECT * FROM settlements WHERE tx_hash = ?`).get(txHash) as Record<string, any> | undefined;
    if (!row) return undefined;
    return {
      txHash: row.tx_hash, kind: row.kind, counterparty: row.counterparty, amountNano: BigInt(row.amount_nano),
      status: row.status, createdAt: row.created_at, updatedAt: row.updated_at,
    };
  }

  pendingSettlements(): Settlement[] {
    const rows = this.stmt(`SELECT tx_hash FROM settlements WHERE status = 'pending' ORDER BY created_at`).all() as { tx_hash: string }[];
    return rows.map((r) => this.getSettlement(r.tx_hash)!);
  }

  /** Sum of recorded costs, ledger-wide or of one scope (a channel). Cached: on the hot path of every request. */
  spentOf(scope = ""): bigint {
    return this.total("spent", scope);
  }

  /** Sum of recorded worker earnings. */
  earnedOf(scope = ""): bigint {
    return this.total("earned", scope);
  }

  totals(scope = ""): LedgerTotals {
    const spent = this.total("spent", scope);
    const earned = this.total("earned", scope);
    return {
      spent, earned, fees: spent - earned > 0n ? spent - earned : 0n,
      redeemed: this.total("redeem", scope), paid: this.total("payout", scope), feesSettled: this.total("fee", scope),
      deposited: this.total("deposit", scope), withdrawn: this.total("withdraw", scope),
    };
  }

  private unsettled(table: VoucherTable, kind: SettlementKind): Unsettled[] {
    const col = VOUCHER_KEY_COLUMN[table];
    const rows = this.stmt(`SELECT ${col} AS k, MAX(cumulative_key) AS c FROM ${table} GROUP BY ${col} ORDER BY ${col}`).all() as { k: string; c: string }[];
    return rows.map(({ k, c }) => {
      const signed = BigInt(c);
      const settled = this.total(kind, k);
      const pending = this.total(`${kind}_pending`, k);
      const rest = signed - settled - pending;
      return { key: k, signed, settled, pending, unsettled: rest > 0n ? rest : 0n };
    });
  }

  /** Per client channel: latest signed voucher vs. confirmed and pending redemptions. */
  unsettledChannels(): Unsettled[] {
    return this.unsettled("client_vouchers", "redeem");
  }

  /** Per worker: latest payout voucher vs. confirmed and pending payouts. */
  unsettledWorkers(): Unsettled[] {
    return this.unsettled("payout_vouchers", "payout");
  }

  /** Commits what is pending, then closes. */
  close(): void {
    if (!this.db.open) return;
    try {
      this.flush();
    } finally {
      this.db.close();
      const fd = this.walFd;
      this.walFd = undefined;
      // An fsync still in flight uses the descriptor: close it when that returns.
      if (fd !== undefined) void (this.syncInFlight ?? Promise.resolve()).catch(() => undefined).then(() => closeSync(fd));
    }
  }
}

/** A `receipts` row as a UsageReceipt (amounts back to bigint). */
function receiptOfRow(row: Record<string, any>): UsageReceipt {
  return {
    requestId: row.request_id, model: row.model, promptTokens: row.prompt_tokens, completionTokens: row.completion_tokens,
    costNano: BigInt(row.cost_nano), workerEarnNano: BigInt(row.worker_earn_nano), workerId: row.worker_id,
    channel: row.channel, receipt: row.receipt ?? null, startedAt: row.started_at, recordedAt: row.recorded_at,
  };
}
