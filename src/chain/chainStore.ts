/**
 * Durable storage for the local development chain (`cocoon chain`).
 *
 * One SQLite file (`chain.sqlite` in the data dir, or an in-memory database when no dir is given) holds:
 *   - `meta`: key/value pairs: schema version, the sandbox's logical time (`lt`) and the last block seqno;
 *   - `accounts`: the ShardAccount BoC of every account the chain has touched (the whole contract state);
 *   - `transactions`: a BOUNDED history of transaction BoCs (newest N per account, newest M overall), with the
 *     fields the TON Center API filters on (account, lt, hash, block seqno, inbound message source / created_lt).
 *
 * Every applied message is written in ONE SQLite transaction, so a crash leaves either the state before or after it.
 */
import Database from "better-sqlite3";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

/** File name of the chain database inside `--data-dir`. */
export const CHAIN_DB_FILE = "chain.sqlite";
/** Bump when the table layout changes; older files are migrated in `migrate()`. */
export const CHAIN_SCHEMA_VERSION = 1;

export interface StoredAccount {
  /** Raw address `wc:hex`. */
  address: string;
  /** BoC of the ShardAccount cell. */
  shardAccount: Buffer;
  /** Unix time of the account's last transaction (the sandbox refuses to run it at an earlier time). */
  lastTxTime: number;
}

export interface StoredTransaction {
  /** Raw address `wc:hex` of the account the transaction ran on. */
  account: string;
  lt: bigint;
  /** 32-byte transaction cell hash. */
  hash: Buffer;
  blockSeqno: number;
  utime: number;
  /** Raw address of the inbound internal message's source, or "" for external / none. */
  inSource: string;
  /** created_lt of the inbound internal message, 0 when there is none. */
  inCreatedLt: bigint;
  /** BoC of the Transaction cell. */
  boc: Buffer;
}

export interface ChainHistoryLimits {
  /** Newest transactions kept per account (older ones are deleted). */
  perAccount: number;
  /** Newest transactions kept overall. */
  total: number;
}

export const DEFAULT_HISTORY_LIMITS: ChainHistoryLimits = { perAccount: 1000, total: 100_000 };

interface TxRow {
  account: string;
  lt: bigint;
  hash: Buffer;
  block_seqno: bigint;
  utime: bigint;
  in_source: string;
  in_created_lt: bigint;
  boc: Buffer;
}

function rowToTx(r: TxRow): StoredTransaction {
  return {
    account: r.account,
    lt: r.lt,
    hash: r.hash,
    blockSeqno: Number(r.block_seqno),
    utime: Number(r.utime),
    inSource: r.in_source,
    inCreatedLt: r.in_created_lt,
    boc: r.boc,
  };
}

export class ChainStore {
  private readonly db: Database.Database;
  private readonly limits: ChainHistoryLimits;
  private insertsSinceGlobalTrim = 0;

  /** Opens (creating when needed) the chain database in `dataDir`, or an in-memory one when `dataDir` is undefined. */
  constructor(dataDir: string | undefined, limits: ChainHistoryLimits = DEFAULT_HISTORY_LIMITS) {
    if (!Number.isInteger(limits.perAccount) || limits.perAccount < 1 || !Number.isInteger(limits.total) || limits.total < 1) {
      throw new Error(`chain history limits must be positive integers, got ${JSON.stringify(limits)}`);
    }
    this.limits = limits;
    if (dataDir !== undefined) mkdirSync(dataDir, { recursive: true });
    const file = dataDir === undefined ? ":memory:" : join(dataDir, CHAIN_DB_FILE);
    try {
      this.db = new Database(file);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = NORMAL");
      this.migrate();
    } catch (e) {
      throw new Error(`cannot open the chain database ${file}: ${(e as Error).message}. ` +
        `Delete the data dir to start a fresh chain, or point --data-dir elsewhere.`);
    }
  }

  private migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const row = this.db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
    const version = row ? Number(row.value) : 0;
    if (version > CHAIN_SCHEMA_VERSION) {
      throw new Error(`chain database schema version ${version} is newer than this program supports (${CHAIN_SCHEMA_VERSION}); upgrade cocoon`);
    }
    if (version < 1) {
      this.db.exec(`
        CREATE TABLE accounts (address TEXT PRIMARY KEY, shard_account BLOB NOT NULL, last_tx_time INTEGER NOT NULL);
        CREATE TABLE transactions (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          account TEXT NOT NULL, lt INTEGER NOT NULL, hash BLOB NOT NULL, block_seqno INTEGER NOT NULL,
          utime INTEGER NOT NULL, in_source TEXT NOT NULL, in_created_lt INTEGER NOT NULL, boc BLOB NOT NULL);
        CREATE INDEX transactions_by_account ON transactions (account, lt);
        CREATE INDEX transactions_by_block ON transactions (block_seqno);
        INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '1');
      `);
    }
  }

  getMeta(key: string): string | undefined {
    const row = this.db.prepare(`SELECT value FROM meta WHERE key = ?`).get(key) as { value: string } | undefined;
    return row?.value;
  }

  loadAccounts(): StoredAccount[] {
    const rows = this.db.prepare(`SELECT address, shard_account, last_tx_time FROM accounts`).all() as
      { address: string; shard_account: Buffer; last_tx_time: number }[];
    return rows.map((r) => ({ address: r.address, shardAccount: r.shard_account, lastTxTime: r.last_tx_time }));
  }

  /** Atomically saves changed accounts, new transactions and meta values, then trims the history. */
  commit(change: { accounts: StoredAccount[]; transactions: StoredTransaction[]; meta: Record<string, string> }): void {
    const putAccount = this.db.prepare(
      `INSERT OR REPLACE INTO accounts (address, shard_account, last_tx_time) VALUES (?, ?, ?)`);
    const putTx = this.db.prepare(`INSERT INTO transactions
      (account, lt, hash, block_seqno, utime, in_source, in_created_lt, boc) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`);
    const putMeta = this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`);
    const trimAccount = this.db.prepare(`DELETE FROM transactions WHERE account = ? AND id <=
      (SELECT id FROM transactions WHERE account = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`);
    const run = this.db.transaction(() => {
      for (const a of change.accounts) putAccount.run(a.address, a.shardAccount, a.lastTxTime);
      const touched = new Set<string>();
      for (const t of change.transactions) {
        putTx.run(t.account, t.lt, t.hash, t.blockSeqno, t.utime, t.inSource, t.inCreatedLt, t.boc);
        touched.add(t.account);
      }
      for (const [k, v] of Object.entries(change.meta)) putMeta.run(k, v);
      for (const a of touched) trimAccount.run(a, a, this.limits.perAccount);
      this.insertsSinceGlobalTrim += change.transactions.length;
      if (this.insertsSinceGlobalTrim >= Math.max(1, Math.floor(this.limits.total / 10))) {
        this.insertsSinceGlobalTrim = 0;
        this.db.prepare(`DELETE FROM transactions WHERE id <= (SELECT MAX(id) FROM transactions) - ?`).run(this.limits.total);
      }
    });
    run();
  }

  /**
   * Transactions of `account`, newest first, with lt <= `maxLt` (when given) and lt > `minLt` (when given).
   */
  transactionsOf(account: string, opts: { maxLt?: bigint; minLt?: bigint; limit: number }): StoredTransaction[] {
    const rows = this.db.prepare(`SELECT * FROM transactions WHERE account = ? AND lt <= ? AND lt > ?
      ORDER BY lt DESC LIMIT ?`).safeIntegers(true)
      .all(account, opts.maxLt ?? (2n ** 63n - 1n), opts.minLt ?? -1n, opts.limit) as TxRow[];
    return rows.map(rowToTx);
  }

  /** The transaction on `account` caused by an internal message from `source` created at `createdLt`. */
  findByInbound(account: string, source: string, createdLt: bigint): StoredTransaction | undefined {
    const row = this.db.prepare(`SELECT * FROM transactions WHERE account = ? AND in_source = ? AND in_created_lt = ?
      LIMIT 1`).safeIntegers(true).get(account, source, createdLt) as TxRow | undefined;
    return row ? rowToTx(row) : undefined;
  }

  /**
   * Transactions of block `blockSeqno` on `workchain`, in the order tonlib lists a block's transactions (by account,
   * then lt), starting strictly after the (account, lt) pair `after` when given.
   */
  transactionsInBlock(blockSeqno: number, workchain: number, limit: number,
    after?: { account: string; lt: bigint }): StoredTransaction[] {
    const prefix = `${workchain}:`;
    const rows = (this.db.prepare(`SELECT * FROM transactions WHERE block_seqno = ? AND substr(account, 1, ?) = ?
      AND (account > ? OR (account = ? AND lt > ?)) ORDER BY account, lt LIMIT ?`)
      .safeIntegers(true)
      .all(blockSeqno, prefix.length, prefix, after?.account ?? "", after?.account ?? "", after?.lt ?? -1n, limit)) as TxRow[];
    return rows.map(rowToTx);
  }

  /** The lt range and time of a block's kept transactions; undefined when it has none (genesis, or trimmed). */
  blockSummary(blockSeqno: number): { startLt: bigint; endLt: bigint; utime: number; count: number } | undefined {
    const r = this.db.prepare(`SELECT MIN(lt) AS lo, MAX(lt) AS hi, MAX(utime) AS ut, COUNT(*) AS n
      FROM transactions WHERE block_seqno = ?`).safeIntegers(true).get(blockSeqno) as
      { lo: bigint | null; hi: bigint | null; ut: bigint | null; n: bigint };
    if (r.n === 0n || r.lo === null || r.hi === null || r.ut === null) return undefined;
    return { startLt: r.lo, endLt: r.hi, utime: Number(r.ut), count: Number(r.n) };
  }

  /** The first kept block whose transactions reach logical time `lt`. */
  blockAtLt(lt: bigint): number | undefined {
    const r = this.db.prepare(`SELECT block_seqno FROM transactions WHERE lt >= ? ORDER BY lt LIMIT 1`)
      .safeIntegers(true).get(lt) as { block_seqno: bigint } | undefined;
    return r ? Number(r.block_seqno) : undefined;
  }

  /** The last kept block made at or before unix time `utime`. */
  blockAtUtime(utime: number): number | undefined {
    const r = this.db.prepare(`SELECT block_seqno FROM transactions WHERE utime <= ? ORDER BY lt DESC LIMIT 1`)
      .safeIntegers(true).get(utime) as { block_seqno: bigint } | undefined;
    return r ? Number(r.block_seqno) : undefined;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`).run(key, value);
  }

  countTransactions(): number {
    return (this.db.prepare(`SELECT COUNT(*) AS n FROM transactions`).get() as { n: number }).n;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
