/**
 * The TON Center v2 methods the local chain answers (a compatible subset: everything `@ton/ton`'s TonClient calls,
 * plus `getAddressBalance`, `getAddressState`, `getWalletInformation`, `sendBocReturnHash` and a `faucet`).
 */
import { Address, Cell } from "@ton/core";
import { ChainError, LocalChain } from "./localChain.js";
import {
  accountInfoJson, blockIdJson, feesJson, Json, parseExternalBoc, stackItemJson, transactionJson,
} from "./toncenterFormat.js";
import {
  optionalBigInt, optionalBool, optionalCell, optionalHash, optionalInt, Params, parseStack, requireAddress,
  requireBigInt, requireBocBytes, requireMethod,
} from "./rpcParams.js";

/** getTransactions: default and largest page size. */
const DEFAULT_TX_LIMIT = 10;
const MAX_TX_LIMIT = 1000;
/** getBlockTransactions: largest page size. */
const MAX_BLOCK_TX_COUNT = 1000;

const now = () => Math.floor(Date.now() / 1000);

type Handler = (chain: LocalChain, p: Params) => Promise<Json>;

async function addressInformation(chain: LocalChain, p: Params): Promise<Json> {
  const info = await chain.accountInfo(requireAddress(p, "address"));
  return accountInfoJson(info, chain.currentBlock(), now());
}

function nanoFromParams(p: Params): bigint {
  return requireBigInt(p, "amount", 1n, 2n ** 120n);
}

const handlers: Record<string, Handler> = {
  getAddressInformation: addressInformation,
  getExtendedAddressInformation: addressInformation,

  async getAddressBalance(chain, p) {
    return (await chain.accountInfo(requireAddress(p, "address"))).balance.toString();
  },

  async getAddressState(chain, p) {
    return (await chain.accountInfo(requireAddress(p, "address"))).state;
  },

  async getWalletInformation(chain, p) {
    const address = requireAddress(p, "address");
    const info = await chain.accountInfo(address);
    let seqno: number | null = null;
    if (info.state === "active") {
      const r = await chain.runGetMethod(address, "seqno", []);
      const top = r.stack[0];
      if (r.exitCode === 0 && top?.type === "int") seqno = Number(top.value);
    }
    return {
      "@type": "ext.accounts.walletInformation",
      wallet: seqno !== null,
      balance: info.balance.toString(),
      account_state: info.state,
      ...(seqno !== null ? { seqno } : {}),
      last_transaction_id: {
        "@type": "internal.transactionId", lt: info.lastTxLt.toString(), hash: info.lastTxHash.toString("base64"),
      },
    };
  },

  async getTransactions(chain, p) {
    const address = requireAddress(p, "address");
    const limit = optionalInt(p, "limit", 1, MAX_TX_LIMIT) ?? DEFAULT_TX_LIMIT;
    const lt = optionalBigInt(p, "lt");
    const hash = optionalHash(p, "hash");
    const toLt = optionalBigInt(p, "to_lt");
    if (hash && lt === undefined) throw new ChainError(400, 'parameter "hash" needs "lt" as well');
    const txs = chain.transactionsOf(address, { maxLt: lt, minLt: toLt, limit });
    // An (lt, hash) anchor that is not the transaction at that lt (or was trimmed from history) yields no page.
    if (hash && lt !== undefined && !(txs[0] && txs[0].lt === lt && txs[0].hash.equals(hash))) return [];
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

  async shards(chain, p) {
    const seqno = optionalInt(p, "seqno", 0, 2 ** 31) ?? chain.lastBlockSeqno;
    return { "@type": "blocks.shards", shards: [blockIdJson({ ...chain.currentBlock(seqno), workchain: 0 })] };
  },

  async getBlockTransactions(chain, p) {
    const workchain = optionalInt(p, "workchain", -1, 0) ?? 0;
    const seqno = optionalInt(p, "seqno", 0, 2 ** 31);
    if (seqno === undefined) throw new ChainError(400, 'parameter "seqno" is required');
    const count = optionalInt(p, "count", 1, MAX_BLOCK_TX_COUNT) ?? 40;
    const txs = chain.transactionsInBlock(seqno, count + 1);
    const page = txs.slice(0, count);
    return {
      "@type": "blocks.transactions",
      id: blockIdJson({ ...chain.currentBlock(seqno), workchain }),
      req_count: count,
      incomplete: txs.length > count,
      transactions: page.map((t) => ({
        "@type": "blocks.shortTxId", mode: 135, account: t.account, lt: t.lt.toString(), hash: t.hash.toString("base64"),
      })),
    };
  },

  async runGetMethod(chain, p) {
    const address = requireAddress(p, "address");
    const method = requireMethod(p);
    const stack = parseStack(p.stack);
    const r = await chain.runGetMethod(address, method, stack);
    const info = await chain.accountInfo(address);
    return {
      "@type": "smc.runResult",
      gas_used: Number(r.gasUsed),
      stack: r.stack.map(stackItemJson),
      exit_code: r.exitCode,
      block_id: blockIdJson(chain.currentBlock()),
      last_transaction_id: {
        "@type": "internal.transactionId", lt: info.lastTxLt.toString(), hash: info.lastTxHash.toString("base64"),
      },
    };
  },

  async sendBoc(chain, p) {
    await send(chain, p);
    return { "@type": "ok" };
  },

  async sendBocReturnHash(chain, p) {
    const hash = await send(chain, p);
    return { "@type": "raw.extMessageInfo", hash: hash.toString("base64"), hash_norm: hash.toString("base64") };
  },

  async estimateFee(chain, p) {
    const address = requireAddress(p, "address");
    const body = optionalCell(p, "body") ?? Cell.EMPTY;
    const code = optionalCell(p, "init_code");
    const data = optionalCell(p, "init_data");
    if ((code === undefined) !== (data === undefined)) {
      throw new ChainError(400, 'give both "init_code" and "init_data", or neither');
    }
    const init = code && data ? { code, data } : null;
    return feesJson(await chain.estimateFee(address, body, init, optionalBool(p, "ignore_chksig")));
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
    throw new ChainError(404, "no transaction on the source account created that message (it may be older than the kept history)");
  },

  async faucet(chain, p) {
    const address = requireAddress(p, "address");
    const amount = nanoFromParams(p);
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

function sameAddress(friendly: string, a: Address): boolean {
  try {
    return Address.parse(friendly).equals(a);
  } catch {
    return false;
  }
}

async function send(chain: LocalChain, p: Params): Promise<Buffer> {
  let parsed;
  try {
    parsed = parseExternalBoc(requireBocBytes(p, "boc"));
  } catch (e) {
    if (e instanceof ChainError) throw e;
    throw new ChainError(400, (e as Error).message);
  }
  await chain.sendExternal(parsed.message);
  return parsed.cell.hash();
}

async function locateResult(chain: LocalChain, p: Params): Promise<Json> {
  const source = requireAddress(p, "source");
  const destination = requireAddress(p, "destination");
  const createdLt = requireBigInt(p, "created_lt");
  const tx = chain.findByInbound(destination, source, createdLt);
  if (!tx) throw new ChainError(404, "no transaction on the destination account for that message (not yet processed, or older than the kept history)");
  return transactionJson(tx);
}

export const RPC_METHODS: readonly string[] = Object.keys(handlers);

/** Runs one API method. Throws ChainError (with an HTTP code) for bad input or a rejected message. */
export async function callRpcMethod(chain: LocalChain, method: string, params: Params): Promise<Json> {
  const h = Object.prototype.hasOwnProperty.call(handlers, method) ? handlers[method] : undefined;
  if (!h) {
    throw new ChainError(404, `unknown method "${method}"; this local chain supports: ${RPC_METHODS.join(", ")}`);
  }
  return h(chain, params);
}
