/**
 * The TON Center v2 methods the local chain answers, with TON Center's shapes and status codes (see docs/chain.md for
 * the table generated from the conformance suite, and for the few deliberate differences), plus a `faucet`.
 */
import { Address, Cell, Dictionary, external } from "@ton/core";
import { ChainError, FULL_SHARD, LocalChain } from "./localChain.js";
import {
  accountInfoJson, BlockIdJson, blockIdJson, feesJson, friendly, Json, normalizedExternalHash, parseExternalBoc,
  stackItemJson, transactionJson,
} from "./toncenterFormat.js";
import {
  cellFromObject, optionalAccountHash, optionalBigInt, optionalBool, optionalCell, optionalHash, optionalInt,
  Params, parseStack, requireAddress, requireBigInt, requireBocBytes, requireHashList, requireMethod,
  requireString,
} from "./rpcParams.js";
import { walletFields } from "./knownWallets.js";
import { tokenData } from "./tokenData.js";

/** getTransactions: default and largest page size. */
const DEFAULT_TX_LIMIT = 10;
const MAX_TX_LIMIT = 1000;
/** getBlockTransactions: default and largest page size. */
const DEFAULT_BLOCK_TX_COUNT = 40;
const MAX_BLOCK_TX_COUNT = 1000;
/** getLibraries: most hashes per request. */
const MAX_LIBRARIES = 16;
/** The highest seqno / workchain a parameter may name (int32). */
const INT32_MAX = 2 ** 31 - 1;

const now = () => Math.floor(Date.now() / 1000);

type Handler = (chain: LocalChain, p: Params) => Promise<Json>;

/** A read of account state at `seqno` (when given): honoured for the latest block, refused for any other. */
function checkStateSeqno(chain: LocalChain, p: Params): void {
  const seqno = optionalInt(p, "seqno", 0, INT32_MAX);
  if (seqno !== undefined) chain.checkBlockSeqno(seqno, { stateOnly: true });
}

function lastTxId(info: { lastTxLt: bigint; lastTxHash: Buffer }): Json {
  return { "@type": "internal.transactionId", lt: info.lastTxLt.toString(), hash: info.lastTxHash.toString("base64") };
}

/**
 * The block a block method names: (workchain, shard, seqno) of an existing block, whose root/file hash must match
 * when given. Masterchain blocks and the single workchain-0 shard block share seqnos here.
 */
/** `workchain` and `shard` of a block method: -1 or 0, and the one shard this chain has (given signed or unsigned). */
function workchainAndShard(p: Params): number {
  const workchain = optionalInt(p, "workchain", -1, 0);
  if (workchain === undefined) throw new ChainError(422, 'parameter "workchain" is required (-1 or 0)');
  const shard = optionalBigInt(p, "shard", -(2n ** 63n), 2n ** 64n - 1n);
  if (shard === undefined) throw new ChainError(422, `parameter "shard" is required (${FULL_SHARD}: this chain has one shard)`);
  if (BigInt.asIntN(64, shard).toString() !== FULL_SHARD) {
    throw new ChainError(500, `shard ${shard} does not exist: this chain has one shard per workchain, ${FULL_SHARD}`);
  }
  return workchain;
}

function namedBlock(chain: LocalChain, p: Params): { workchain: number; seqno: number; id: BlockIdJson } {
  const workchain = workchainAndShard(p);
  const seqno = optionalInt(p, "seqno", 0, INT32_MAX);
  if (seqno === undefined) throw new ChainError(422, 'parameter "seqno" is required');
  chain.checkBlockSeqno(seqno);
  const id = blockIdJson({ ...chain.currentBlock(seqno), workchain });
  const rootHash = optionalHash(p, "root_hash");
  const fileHash = optionalHash(p, "file_hash");
  if ((rootHash && rootHash.toString("base64") !== id.root_hash) || (fileHash && fileHash.toString("base64") !== id.file_hash)) {
    throw new ChainError(500, `block ${workchain}:${FULL_SHARD}:${seqno} has other root/file hashes than the ones given`);
  }
  return { workchain, seqno, id };
}

/** getBlockTransactions(Ext) page: transactions after (after_hash account, after_lt), one more fetched for `incomplete`. */
function blockPage(chain: LocalChain, p: Params) {
  const block = namedBlock(chain, p);
  const count = optionalInt(p, "count", 1, MAX_BLOCK_TX_COUNT) ?? DEFAULT_BLOCK_TX_COUNT;
  const afterLt = optionalBigInt(p, "after_lt");
  const afterHash = optionalAccountHash(p, "after_hash");
  if ((afterLt === undefined) !== (afterHash === undefined)) {
    throw new ChainError(422, 'give both "after_lt" and "after_hash" (the account of the last transaction seen), or neither');
  }
  const after = afterHash !== undefined && afterLt !== undefined
    ? { account: `${block.workchain}:${afterHash}`, lt: afterLt } : undefined;
  const txs = chain.transactionsInBlock(block.seqno, block.workchain, count + 1, after);
  return { block, count, page: txs.slice(0, count), incomplete: txs.length > count };
}

/** `address` → the three printed forms TON Center's detectAddress returns. */
function detectedAddress(s: string): Json {
  const t = s.trim();
  let a: Address;
  let givenType: "raw_form" | "friendly_bounceable" | "friendly_non_bounceable";
  let testOnly = false;
  try {
    if (Address.isFriendly(t)) {
      const f = Address.parseFriendly(t);
      a = f.address;
      testOnly = f.isTestOnly;
      givenType = f.isBounceable ? "friendly_bounceable" : "friendly_non_bounceable";
    } else {
      a = Address.parseRaw(t);
      givenType = "raw_form";
    }
  } catch {
    throw new ChainError(422, 'parameter "address" is not a TON address (expected raw "0:<64 hex>" or a user-friendly form like "EQ...")');
  }
  const form = (bounceable: boolean) => ({
    b64: a.toString({ bounceable, testOnly, urlSafe: false }),
    b64url: a.toString({ bounceable, testOnly, urlSafe: true }),
  });
  return {
    "@type": "ext.utils.detectedAddress",
    raw_form: a.toRawString(),
    bounceable: form(true),
    non_bounceable: form(false),
    given_type: givenType,
    test_only: testOnly,
  };
}

/** getExtendedAddressInformation's `account_state`: tonlib's typed view for the wallets it knows, raw otherwise. */
function typedAccountState(info: { state: string; code: Cell | null; data: Cell | null; frozenHash: Buffer | null }): Json {
  if (info.state !== "active") {
    return { "@type": "uninited.accountState", frozen_hash: info.frozenHash ? info.frozenHash.toString("base64") : "" };
  }
  const w = walletFields(info.code, info.data);
  if (w && (w.wallet_type === "wallet v3 r1" || w.wallet_type === "wallet v3 r2")) {
    return { "@type": "wallet.v3.accountState", wallet_id: w.wallet_id ?? 0, seqno: w.seqno };
  }
  if (w && (w.wallet_type === "wallet v4 r1" || w.wallet_type === "wallet v4 r2")) {
    return { "@type": "wallet.v4.accountState", wallet_id: w.wallet_id ?? 0, seqno: w.seqno };
  }
  return {
    "@type": "raw.accountState",
    code: info.code ? info.code.toBoc().toString("base64") : "",
    data: info.data ? info.data.toBoc().toString("base64") : "",
    frozen_hash: "",
  };
}

/** An external message to `address` with `body` and optional state init, as tonlib's raw.createQuery builds it. */
function queryMessage(address: Address, body: Cell, code: Cell | undefined, data: Cell | undefined) {
  if ((code === undefined) !== (data === undefined)) throw new ChainError(422, 'give both "init_code" and "init_data", or neither');
  return external({ to: address, body, init: code && data ? { code, data } : undefined });
}

const handlers: Record<string, Handler> = {
  async getAddressInformation(chain, p) {
    const address = requireAddress(p, "address");
    checkStateSeqno(chain, p);
    return accountInfoJson(await chain.accountInfo(address), chain.currentBlock(), now());
  },

  async getExtendedAddressInformation(chain, p) {
    const address = requireAddress(p, "address");
    checkStateSeqno(chain, p);
    const info = await chain.accountInfo(address);
    return {
      "@type": "fullAccountState",
      address: { "@type": "accountAddress", account_address: friendly(address) },
      balance: info.balance.toString(),
      extra_currencies: [],
      last_transaction_id: lastTxId(info),
      block_id: blockIdJson(chain.currentBlock()),
      sync_utime: now(),
      account_state: typedAccountState(info),
      revision: 0,
    };
  },

  async getAddressBalance(chain, p) {
    const address = requireAddress(p, "address");
    checkStateSeqno(chain, p);
    return (await chain.accountInfo(address)).balance.toString();
  },

  async getAddressState(chain, p) {
    const address = requireAddress(p, "address");
    checkStateSeqno(chain, p);
    return (await chain.accountInfo(address)).state;
  },

  async getWalletInformation(chain, p) {
    const address = requireAddress(p, "address");
    checkStateSeqno(chain, p);
    const info = await chain.accountInfo(address);
    const w = info.state === "active" ? walletFields(info.code, info.data) : undefined;
    return {
      "@type": "ext.accounts.walletInformation",
      wallet: w !== undefined,
      balance: info.balance.toString(),
      extra_currencies: [],
      account_state: info.state,
      ...(w ?? {}),
      last_transaction_id: lastTxId(info),
    };
  },

  async getTokenData(chain, p) {
    return tokenData(chain, requireAddress(p, "address"));
  },

  async detectAddress(_chain, p) {
    return detectedAddress(requireString(p, "address"));
  },

  async packAddress(_chain, p) {
    const d = detectedAddress(requireString(p, "address")) as { bounceable: { b64url: string } };
    return d.bounceable.b64url;
  },

  async unpackAddress(_chain, p) {
    return (detectedAddress(requireString(p, "address")) as { raw_form: string }).raw_form;
  },

  async getTransactions(chain, p) {
    const address = requireAddress(p, "address");
    const limit = optionalInt(p, "limit", 1, MAX_TX_LIMIT) ?? DEFAULT_TX_LIMIT;
    const lt = optionalBigInt(p, "lt");
    const hash = optionalHash(p, "hash");
    const toLt = optionalBigInt(p, "to_lt");
    if ((hash === undefined) !== (lt === undefined)) {
      throw new ChainError(422, 'parameters "lt" and "hash" go together: give both (the transaction to start from) or neither');
    }
    const txs = chain.transactionsOf(address, { maxLt: lt, minLt: toLt, limit });
    // An (lt, hash) anchor that is not the transaction at that lt (or was trimmed from history) yields no page.
    if (hash && lt !== undefined && !(txs[0] && txs[0].lt === lt && txs[0].hash.equals(hash))) {
      // A liteserver refuses an anchor it cannot find; TON Center passes that on as a tonlib error (500).
      throw new ChainError(500, "transaction was not found: no transaction with that lt and hash on this account (or it is older than the kept history)");
    }
    return txs.map(transactionJson);
  },

  async getMasterchainInfo(chain) {
    const last = chain.currentBlock();
    return {
      "@type": "blocks.masterchainInfo",
      last: blockIdJson(last),
      state_root_hash: last.rootHash.toString("base64"),
      init: blockIdJson(chain.currentBlock(0)),
    };
  },

  async getConsensusBlock(chain) {
    return { "@type": "ext.blocks.consensusBlock", consensus_block: chain.lastBlockSeqno, timestamp: now() };
  },

  async lookupBlock(chain, p) {
    const workchain = workchainAndShard(p);
    const seqno = optionalInt(p, "seqno", 0, INT32_MAX);
    const lt = optionalBigInt(p, "lt");
    const utime = optionalInt(p, "unixtime", 0, 2 ** 32 - 1);
    if ([seqno, lt, utime].filter((x) => x !== undefined).length !== 1) {
      throw new ChainError(422, 'give exactly one of "seqno", "lt" or "unixtime"');
    }
    const found = seqno ?? chain.blockAt({ lt, utime });
    chain.checkBlockSeqno(found);
    return blockIdJson({ ...chain.currentBlock(found), workchain });
  },

  async shards(chain, p) {
    const seqno = optionalInt(p, "seqno", 0, INT32_MAX);
    if (seqno === undefined) throw new ChainError(422, 'parameter "seqno" is required (a masterchain block seqno)');
    chain.checkBlockSeqno(seqno);
    return { "@type": "blocks.shards", shards: [blockIdJson({ ...chain.currentBlock(seqno), workchain: 0 })] };
  },

  async getBlockHeader(chain, p) {
    const { workchain, seqno, id } = namedBlock(chain, p);
    const s = chain.blockSummary(seqno);
    return {
      "@type": "blocks.header",
      id,
      global_id: chain.globalId,
      version: 0,
      flags: 0,
      after_merge: false,
      after_split: false,
      before_split: false,
      want_merge: false,
      want_split: false,
      validator_list_hash_short: 0,
      catchain_seqno: 0,
      min_ref_mc_seqno: seqno,
      is_key_block: seqno === 0,
      prev_key_block_seqno: 0,
      start_lt: s.startLt.toString(),
      end_lt: s.endLt.toString(),
      gen_utime: s.utime,
      vert_seqno: 0,
      prev_blocks: seqno === 0 ? [] : [blockIdJson({ ...chain.currentBlock(seqno - 1), workchain })],
    };
  },

  async getBlockTransactions(chain, p) {
    const { block, count, page, incomplete } = blockPage(chain, p);
    return {
      "@type": "blocks.transactions",
      id: block.id,
      req_count: count,
      incomplete,
      transactions: page.map((t) => ({
        "@type": "blocks.shortTxId", mode: 135, account: t.account, lt: t.lt.toString(), hash: t.hash.toString("base64"),
      })),
    };
  },

  async getBlockTransactionsExt(chain, p) {
    const { block, count, page, incomplete } = blockPage(chain, p);
    return {
      "@type": "blocks.transactionsExt",
      id: block.id,
      req_count: count,
      incomplete,
      transactions: page.map((t) => ({ ...(transactionJson(t) as { [k: string]: Json }), "@type": "raw.transactionExt" })),
    };
  },

  async getConfigParam(chain, p) {
    const id = optionalInt(p, "config_id", -(2 ** 31), INT32_MAX);
    if (id === undefined) throw new ChainError(422, 'parameter "config_id" is required (a config parameter number)');
    checkStateSeqno(chain, p);
    const dict = Dictionary.loadDirect(Dictionary.Keys.Int(32), Dictionary.Values.Cell(), chain.configCell);
    const param = dict.get(id);
    if (!param) throw new ChainError(500, `config parameter ${id} is not set on this chain`);
    return { "@type": "configInfo", config: { "@type": "tvm.cell", bytes: param.toBoc().toString("base64") } };
  },

  async getLibraries(chain, p) {
    const wanted = requireHashList(p, "libraries", MAX_LIBRARIES);
    const libs = chain.librariesCell;
    const dict = libs ? Dictionary.loadDirect(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell(), libs) : undefined;
    const result: Json[] = [];
    for (const h of wanted) {
      const lib = dict?.get(BigInt("0x" + h.toString("hex")));
      if (lib) result.push({ "@type": "smc.libraryEntry", hash: h.toString("base64"), data: lib.toBoc().toString("base64") });
    }
    return { "@type": "smc.libraryResult", result };
  },

  async runGetMethod(chain, p) {
    const address = requireAddress(p, "address");
    const method = requireMethod(p);
    const stack = parseStack(p.stack);
    checkStateSeqno(chain, p);
    const r = await chain.runGetMethod(address, method, stack);
    const info = await chain.accountInfo(address);
    return {
      "@type": "smc.runResult",
      gas_used: Number(r.gasUsed),
      stack: r.stack.map(stackItemJson),
      exit_code: r.exitCode,
      block_id: blockIdJson(chain.currentBlock()),
      last_transaction_id: lastTxId(info),
    };
  },

  async sendBoc(chain, p) {
    await send(chain, p);
    return { "@type": "ok" };
  },

  async sendBocReturnHash(chain, p) {
    const { hash, hashNorm } = await send(chain, p);
    return { "@type": "raw.extMessageInfo", hash: hash.toString("base64"), hash_norm: hashNorm.toString("base64") };
  },

  async sendQuery(chain, p) {
    const address = requireAddress(p, "address");
    const body = optionalCell(p, "body");
    if (!body) throw new ChainError(422, 'parameter "body" is required (a base64 BoC of the message body)');
    await chain.sendExternal(queryMessage(address, body, optionalCell(p, "init_code"), optionalCell(p, "init_data")));
    return { "@type": "ok" };
  },

  async sendQuerySimple(chain, p) {
    const address = requireAddress(p, "address");
    const body = cellFromObject(p.body, "body");
    const code = p.init_code === undefined || p.init_code === null ? undefined : cellFromObject(p.init_code, "init_code");
    const data = p.init_data === undefined || p.init_data === null ? undefined : cellFromObject(p.init_data, "init_data");
    await chain.sendExternal(queryMessage(address, body, code, data));
    return { "@type": "ok" };
  },

  async estimateFee(chain, p) {
    const address = requireAddress(p, "address");
    const body = optionalCell(p, "body") ?? Cell.EMPTY;
    const code = optionalCell(p, "init_code");
    const data = optionalCell(p, "init_data");
    if ((code === undefined) !== (data === undefined)) {
      throw new ChainError(422, 'give both "init_code" and "init_data", or neither');
    }
    const init = code && data ? { code, data } : null;
    // TON Center assumes every signature check passes unless told otherwise: an estimate needs no key.
    return feesJson(await chain.estimateFee(address, body, init, optionalBool(p, "ignore_chksig", true)));
  },

  async tryLocateTx(chain, p) {
    return locateResult(chain, p);
  },
  async tryLocateResultTx(chain, p) {
    return locateResult(chain, p);
  },

  async tryLocateSourceTx(chain, p) {
    const source = requireAddress(p, "source");
    const destination = requireAddress(p, "destination");
    const createdLt = requireBigInt(p, "created_lt");
    // The outbound message was created by the source's transaction with the greatest lt below created_lt.
    const [tx] = chain.transactionsOf(source, { maxLt: createdLt - 1n, limit: 1 });
    if (tx) {
      const json = transactionJson(tx) as { out_msgs: { destination: string; created_lt: string }[] };
      if (json.out_msgs.some((m) => m.created_lt === createdLt.toString() && sameAddress(m.destination, destination))) {
        return json as unknown as Json;
      }
    }
    throw new ChainError(404, "transaction was not found: no transaction on the source account created that message (it may be older than the kept history)");
  },

  async faucet(chain, p) {
    const address = requireAddress(p, "address");
    const amount = requireBigInt(p, "amount", 1n, 2n ** 120n);
    const txs = await chain.faucet(address, amount);
    const arrived = txs.find((t) => t.inMessage?.info.type === "internal" && t.inMessage.info.dest.equals(address));
    return {
      "@type": "cocoon.faucetResult",
      address: address.toString({ urlSafe: true, bounceable: false }),
      amount: amount.toString(),
      from: chain.treasuryAddress.toString(),
      ...(arrived ? { transaction_id: { lt: arrived.lt.toString(), hash: arrived.hash().toString("base64") } } : {}),
    };
  },
};

function sameAddress(friendlyForm: string, a: Address): boolean {
  try {
    return Address.parse(friendlyForm).equals(a);
  } catch {
    return false;
  }
}

async function send(chain: LocalChain, p: Params): Promise<{ hash: Buffer; hashNorm: Buffer }> {
  let parsed;
  try {
    parsed = parseExternalBoc(requireBocBytes(p, "boc"));
  } catch (e) {
    if (e instanceof ChainError) throw e;
    throw new ChainError(422, (e as Error).message);
  }
  if (parsed.message.info.type !== "external-in") {
    throw new ChainError(422, `sendBoc takes an external-in message, got an ${parsed.message.info.type} message`);
  }
  const hashNorm = normalizedExternalHash(parsed.message);
  await chain.sendExternal(parsed.message);
  return { hash: parsed.cell.hash(), hashNorm };
}

async function locateResult(chain: LocalChain, p: Params): Promise<Json> {
  const source = requireAddress(p, "source");
  const destination = requireAddress(p, "destination");
  const createdLt = requireBigInt(p, "created_lt");
  const tx = chain.findByInbound(destination, source, createdLt);
  if (!tx) throw new ChainError(404, "transaction was not found: no transaction on the destination account for that message (not yet processed, or older than the kept history)");
  return transactionJson(tx);
}

export const RPC_METHODS: readonly string[] = Object.keys(handlers);

/** Runs one API method. Throws ChainError (with TON Center's HTTP code) for bad input or a refused request. */
export async function callRpcMethod(chain: LocalChain, method: string, params: Params): Promise<Json> {
  const h = Object.prototype.hasOwnProperty.call(handlers, method) ? handlers[method] : undefined;
  if (!h) {
    throw new ChainError(404, `unknown method "${method}"; this local chain supports: ${RPC_METHODS.join(", ")}`);
  }
  return h(chain, params);
}
