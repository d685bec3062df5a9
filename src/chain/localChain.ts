/**
 * The local development chain: a `@ton/sandbox` Blockchain (the real TVM emulator) plus what a node would add:
 * durable state (ChainStore), a bounded transaction history, "blocks" (one per applied message batch), a faucet
 * and a single lock so that HTTP requests never interleave inside the emulator.
 */
import { Blockchain, BlockchainTransaction, EmulationError, GetMethodError, SendMessageResult } from "@ton/sandbox";
import type { SandboxContract, TreasuryContract } from "@ton/sandbox";
import {
  Address, beginCell, Cell, Dictionary, loadShardAccount, Message, storeShardAccount, Transaction, TupleItem,
} from "@ton/core";
import { createHash } from "node:crypto";
import { ChainHistoryLimits, ChainStore, DEFAULT_HISTORY_LIMITS, StoredTransaction } from "./chainStore.js";

/** Seed of the sandbox treasury wallet the faucet pays from (deterministic address). */
export const FAUCET_TREASURY_SEED = "cocoon-devnet-faucet";
/** Largest amount one faucet request may ask for: 1000 TON. */
export const DEFAULT_FAUCET_MAX_NANOTON = 1000n * 1_000_000_000n;
/** When the faucet treasury falls below this, it is refilled (it is a development chain): 100k TON. */
const FAUCET_REFILL_BELOW_NANOTON = 100_000n * 1_000_000_000n;
const FAUCET_REFILL_TO_NANOTON = 1_000_000n * 1_000_000_000n;
/** Shard id of the single (whole) shard, as TON Center prints it: 0x8000000000000000 as a signed int64. */
export const FULL_SHARD = "-9223372036854775808";

/**
 * The HTTP statuses the local chain answers with, TON Center's (see docs/chain.md): 404 not found / unknown method,
 * 405 wrong HTTP method, 409 not a token, 413 body too large, 422 bad parameter, 500 refused by the chain,
 * 503 shutting down. TON Center's wire vocabulary, separate from the node protocol's (src/protocol/errors.ts).
 */
export type ChainErrorStatus = 404 | 405 | 409 | 413 | 422 | 500 | 503;

export class ChainError extends Error {
  constructor(public readonly code: ChainErrorStatus, message: string) {
    super(message);
  }
}

export interface BlockId { workchain: number; shard: string; seqno: number; rootHash: Buffer; fileHash: Buffer }

export interface AccountInfo {
  balance: bigint;
  state: "active" | "uninitialized" | "frozen";
  code: Cell | null;
  data: Cell | null;
  lastTxLt: bigint;
  lastTxHash: Buffer;
  frozenHash: Buffer | null;
}

export interface GetMethodOutcome { exitCode: number; gasUsed: bigint; stack: TupleItem[] }

export interface FeeEstimate { inFwdFee: bigint; storageFee: bigint; gasFee: bigint; fwdFee: bigint }

export interface LocalChainOptions {
  dataDir?: string;
  history?: ChainHistoryLimits;
  faucetMaxNanoton?: bigint;
}

/** Balance an account is emulated with by estimateFee when it holds less: 1000 TON, above any gas limit's cost. */
const ESTIMATE_BALANCE = 1000n * 1_000_000_000n;

/** Exit code the TVM uses for "method not found / contract not active", as TON Center reports for get-methods. */
const EXIT_CODE_NOT_ACTIVE = -13;

export class LocalChain {
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    readonly blockchain: Blockchain,
    private readonly store: ChainStore,
    private treasury: SandboxContract<TreasuryContract>,
    private blockSeqno: number,
    readonly faucetMaxNanoton: bigint,
    /** Unix time block 0 was made: when this chain's data dir was first opened. */
    readonly genesisUtime: number,
  ) {}

  /** Creates the chain, restoring accounts and logical time from `dataDir` when it holds a previous run. */
  static async open(opts: LocalChainOptions = {}): Promise<LocalChain> {
    const store = new ChainStore(opts.dataDir, opts.history ?? DEFAULT_HISTORY_LIMITS);
    try {
      const bc = await Blockchain.create();
      const accounts = store.loadAccounts();
      if (accounts.length > 0) {
        const snap = bc.snapshot();
        snap.contracts = accounts.map((a) => ({
          address: Address.parseRaw(a.address),
          account: loadShardAccount(Cell.fromBoc(a.shardAccount)[0].beginParse()),
          lastTxTime: a.lastTxTime,
        }));
        snap.lt = BigInt(store.getMeta("lt") ?? "0");
        snap.transactions = [];
        await bc.loadFrom(snap);
      }
      const seqno = Number(store.getMeta("block_seqno") ?? "0");
      let genesis = Number(store.getMeta("genesis_utime") ?? "NaN");
      if (!Number.isSafeInteger(genesis)) {
        genesis = Math.floor(Date.now() / 1000);
        store.setMeta("genesis_utime", String(genesis));
      }
      const treasury = await bc.treasury(FAUCET_TREASURY_SEED);
      const chain = new LocalChain(bc, store, treasury, seqno, opts.faucetMaxNanoton ?? DEFAULT_FAUCET_MAX_NANOTON, genesis);
      // The treasury's own deployment (first run) is not worth a block; save its account directly.
      await chain.persist([], [treasury.address]);
      return chain;
    } catch (e) {
      store.close();
      throw e;
    }
  }

  get treasuryAddress(): Address {
    return this.treasury.address;
  }

  /** Runs `fn` alone: the emulator and the store are never used by two requests at once. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(() => {
      if (this.closed) throw new ChainError(503, "the chain is shutting down; retry after it restarts");
      return fn();
    });
    this.lock = run.catch(() => undefined);
    return run;
  }

  currentBlock(seqno = this.blockSeqno): BlockId {
    const h = (tag: string) => createHash("sha256").update(`cocoon-devnet/${tag}/${seqno}`).digest();
    return { workchain: -1, shard: FULL_SHARD, seqno, rootHash: h("root"), fileHash: h("file") };
  }

  get lastBlockSeqno(): number {
    return this.blockSeqno;
  }

  async accountInfo(address: Address): Promise<AccountInfo> {
    return this.exclusive(async () => {
      const c = await this.blockchain.getContract(address);
      const st = c.accountState;
      let state: AccountInfo["state"] = "uninitialized";
      let code: Cell | null = null;
      let data: Cell | null = null;
      let frozenHash: Buffer | null = null;
      if (st?.type === "active") {
        state = "active";
        code = st.state.code ?? null;
        data = st.state.data ?? null;
      } else if (st?.type === "frozen") {
        state = "frozen";
        frozenHash = Buffer.from(st.stateHash.toString(16).padStart(64, "0"), "hex");
      }
      const lastHash = c.lastTransactionHash;
      return {
        balance: c.balance, state, code, data, frozenHash,
        lastTxLt: c.lastTransactionLt,
        lastTxHash: Buffer.from(lastHash.toString(16).padStart(64, "0"), "hex"),
      };
    });
  }

  async runGetMethod(address: Address, method: string | number, stack: TupleItem[]): Promise<GetMethodOutcome> {
    return this.exclusive(async () => {
      const c = await this.blockchain.getContract(address);
      if (c.accountState?.type !== "active") return { exitCode: EXIT_CODE_NOT_ACTIVE, gasUsed: 0n, stack: [] };
      try {
        const r = await c.get(method, stack);
        return { exitCode: r.exitCode, gasUsed: r.gasUsed, stack: r.stack };
      } catch (e) {
        if (e instanceof GetMethodError) return { exitCode: e.exitCode, gasUsed: e.gasUsed, stack: [] };
        throw new ChainError(500, `get-method ${String(method)} failed: ${(e as Error).message}`);
      }
    });
  }

  /** Applies an external-in message (what `sendBoc` carries) and everything it triggers. */
  async sendExternal(message: Message): Promise<BlockchainTransaction[]> {
    if (message.info.type !== "external-in") {
      throw new ChainError(422, `sendBoc takes an external-in message, got an ${message.info.type} message`);
    }
    const dest = message.info.dest;
    return this.exclusive(async () => {
      let res: SendMessageResult;
      try {
        res = await this.blockchain.sendMessage(message);
      } catch (e) {
        throw this.rejected(dest, e);
      }
      return this.afterBlock(res);
    });
  }

  /** Sends `amount` nanoTON from the faucet treasury to `to` (non-bounceable, so it also funds undeployed wallets). */
  async faucet(to: Address, amount: bigint): Promise<BlockchainTransaction[]> {
    if (amount <= 0n) throw new ChainError(422, "faucet amount must be a positive number of nanoTON");
    if (amount > this.faucetMaxNanoton) {
      throw new ChainError(422, `faucet amount ${amount} nanoTON is above the cap of ${this.faucetMaxNanoton} nanoTON; ask for less or call it several times`);
    }
    return this.exclusive(async () => {
      const c = await this.blockchain.getContract(this.treasury.address);
      if (c.balance < FAUCET_REFILL_BELOW_NANOTON) c.balance = FAUCET_REFILL_TO_NANOTON;
      const res = await this.treasury.send({ to, value: amount, bounce: false });
      return this.afterBlock(res);
    });
  }

  /**
   * Emulates an external message on a copy of the account state and reports the fees; nothing is committed.
   * An account that could not pay for the run (an unfunded, undeployed wallet: what one estimates before funding it)
   * is emulated as if it held ESTIMATE_BALANCE: TON Center answers 200 there too, with gas_fee 0 (tonlib limits gas
   * by the real balance), which says nothing about what to fund; docs/chain.md lists the difference.
   */
  async estimateFee(address: Address, body: Cell, init: { code: Cell; data: Cell } | null, ignoreChksig: boolean): Promise<FeeEstimate> {
    return this.exclusive(async () => {
      const c = await this.blockchain.getContract(address);
      const saved = c.snapshot();
      try {
        if (c.balance < ESTIMATE_BALANCE) c.balance = ESTIMATE_BALANCE;
        const msg: Message = {
          info: { type: "external-in", dest: address, importFee: 0n },
          init: init ?? undefined,
          body,
        };
        const tx = await c.receiveMessage(msg, { ignoreChksig });
        return feesOf(tx);
      } catch (e) {
        throw this.rejected(address, e);
      } finally {
        c.loadFrom(saved);
      }
    });
  }

  private rejected(dest: Address, e: unknown): ChainError {
    if (e instanceof ChainError) return e;
    if (e instanceof EmulationError) {
      const exit = e.exitCode !== undefined ? ` (exit code ${e.exitCode})` : "";
      return new ChainError(500, `cannot apply external message to ${dest.toString()}: ${e.error}${exit}. ` +
        `Check the signature, seqno, wallet id and that the account has enough balance.`);
    }
    return new ChainError(500, `emulator failed: ${(e as Error).message}`);
  }

  private async afterBlock(res: SendMessageResult): Promise<BlockchainTransaction[]> {
    this.blockSeqno += 1;
    const touched = res.transactions
      .map((tx) => destOf(tx))
      .filter((a): a is Address => a !== undefined);
    await this.persist(res.transactions, touched);
    // The sandbox keeps every transaction (with logs) in memory forever; our own bounded history is in the store.
    (this.blockchain as unknown as { transactions: unknown[] }).transactions.length = 0;
    return res.transactions;
  }

  private async persist(txs: Transaction[], touched: Address[]): Promise<void> {
    const seen = new Map<string, Address>();
    for (const a of touched) seen.set(a.toRawString(), a);
    const accounts = [];
    for (const [raw, a] of seen) {
      const snap = (await this.blockchain.getContract(a)).snapshot();
      accounts.push({
        address: raw,
        shardAccount: beginCell().store(storeShardAccount(snap.account)).endCell().toBoc(),
        lastTxTime: snap.lastTxTime,
      });
    }
    const stored: StoredTransaction[] = [];
    for (const tx of txs) {
      const dest = destOf(tx);
      if (!dest) continue;
      const info = tx.inMessage?.info;
      stored.push({
        account: dest.toRawString(),
        lt: tx.lt,
        hash: tx.hash(),
        blockSeqno: this.blockSeqno,
        utime: tx.now,
        inSource: info?.type === "internal" ? info.src.toRawString() : "",
        inCreatedLt: info?.type === "internal" ? info.createdLt : 0n,
        boc: tx.raw.toBoc(),
      });
    }
    this.store.commit({
      accounts, transactions: stored,
      meta: { lt: this.blockchain.lt.toString(), block_seqno: String(this.blockSeqno) },
    });
  }

  transactionsOf(address: Address, opts: { maxLt?: bigint; minLt?: bigint; limit: number }): StoredTransaction[] {
    return this.store.transactionsOf(address.toRawString(), opts);
  }

  findByInbound(destination: Address, source: Address, createdLt: bigint): StoredTransaction | undefined {
    return this.store.findByInbound(destination.toRawString(), source.toRawString(), createdLt);
  }

  transactionsInBlock(seqno: number, workchain: number, limit: number, after?: { account: string; lt: bigint }): StoredTransaction[] {
    return this.store.transactionsInBlock(seqno, workchain, limit, after);
  }

  /**
   * Refuses a block seqno this chain cannot answer for: one not made yet, or (for reads of account state, `stateOnly`)
   * any but the latest, since only the current state is kept. Never answers with another block's data.
   */
  checkBlockSeqno(seqno: number, opts: { stateOnly?: boolean } = {}): void {
    if (seqno > this.blockSeqno) {
      throw new ChainError(500, `block ${seqno} does not exist yet: the last block is ${this.blockSeqno}`);
    }
    if (opts.stateOnly && seqno !== this.blockSeqno) {
      throw new ChainError(500, `the state at block ${seqno} is not kept: this local chain keeps only the latest ` +
        `state (block ${this.blockSeqno}); omit "seqno" or pass ${this.blockSeqno}`);
    }
  }

  /** Start/end lt and time of a block, from its kept transactions (genesis: lt 0 at the chain's creation). */
  blockSummary(seqno: number): { startLt: bigint; endLt: bigint; utime: number } {
    this.checkBlockSeqno(seqno);
    if (seqno === 0) return { startLt: 0n, endLt: 0n, utime: this.genesisUtime };
    const s = this.store.blockSummary(seqno);
    if (!s) throw new ChainError(500, `block ${seqno} is older than the kept transaction history; its header is not known`);
    return s;
  }

  /** The block a lookup by lt or unix time lands on (tonlib's lookupBlock modes 2 and 4). */
  blockAt(by: { lt?: bigint; utime?: number }): number {
    const found = by.lt !== undefined ? this.store.blockAtLt(by.lt)
      : by.utime !== undefined ? this.store.blockAtUtime(by.utime) : undefined;
    if (found !== undefined) return found;
    if (by.lt === 0n || (by.utime !== undefined && by.utime >= this.genesisUtime && this.blockSeqno === 0)) return 0;
    throw new ChainError(500, by.lt !== undefined
      ? `no block reaches lt ${by.lt} (the last block ends before it, or it is older than the kept history)`
      : `no kept block was made at or before unix time ${by.utime}`);
  }

  /** Root of the configuration dictionary the emulator runs with (`ConfigParams`). */
  get configCell(): Cell {
    return this.blockchain.config;
  }

  /** The chain's global id, from config parameter 19 (what blocks carry as `global_id`). */
  get globalId(): number {
    const dict = Dictionary.loadDirect(Dictionary.Keys.Int(32), Dictionary.Values.Cell(), this.blockchain.config);
    const p19 = dict.get(19);
    if (!p19) throw new ChainError(500, "config parameter 19 (global id) is not set on this chain");
    return p19.beginParse().loadInt(32);
  }

  /** The public libraries known to the emulator (a dictionary hash → library cell), if any. */
  get librariesCell(): Cell | undefined {
    return this.blockchain.libs;
  }

  /** Waits for running requests, then closes the store. State is already on disk after every block. */
  async close(): Promise<void> {
    await this.exclusive(async () => { this.closed = true; });
    this.store.close();
  }
}

function destOf(tx: Transaction): Address | undefined {
  const info = tx.inMessage?.info;
  if (info && (info.type === "internal" || info.type === "external-in")) return info.dest;
  return undefined;
}

/** Splits a transaction's fees the way TON Center's `estimateFee` reports them. */
export function feesOf(tx: Transaction): FeeEstimate {
  const d = tx.description;
  let storageFee = 0n, gasFee = 0n, fwdFee = 0n;
  if (d.type === "generic") {
    storageFee = d.storagePhase?.storageFeesCollected ?? 0n;
    if (d.computePhase.type === "vm") gasFee = d.computePhase.gasFees;
    fwdFee = d.actionPhase?.totalFwdFees ?? 0n;
  }
  const total = tx.totalFees.coins;
  const inFwdFee = total - storageFee - gasFee > 0n ? total - storageFee - gasFee : 0n;
  return { inFwdFee, storageFee, gasFee, fwdFee };
}
