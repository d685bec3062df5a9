/**
 * Conversions between TON objects and the JSON shapes of TON Center API v2 (what `@ton/ton`'s TonClient parses with
 * zod): block ids, account states, messages, transactions and get-method stacks.
 */
import { Address, Cell, loadMessage, loadTransaction, Message, TupleItem } from "@ton/core";
import type { AccountInfo, BlockId, FeeEstimate } from "./localChain.js";
import type { StoredTransaction } from "./chainStore.js";

/** Opcode 0 in the first 32 bits of a message body marks a text comment. */
const TEXT_COMMENT_OP = 0;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function blockIdJson(b: BlockId): Json {
  return {
    "@type": "ton.blockIdExt",
    workchain: b.workchain,
    shard: b.shard,
    seqno: b.seqno,
    root_hash: b.rootHash.toString("base64"),
    file_hash: b.fileHash.toString("base64"),
  };
}

export function friendly(a: Address): string {
  return a.toString({ urlSafe: true, bounceable: true });
}

export function accountInfoJson(info: AccountInfo, block: BlockId, syncUtime: number): Json {
  return {
    "@type": "raw.fullAccountState",
    balance: info.balance.toString(),
    extra_currencies: [],
    code: info.code ? info.code.toBoc().toString("base64") : "",
    data: info.data ? info.data.toBoc().toString("base64") : "",
    last_transaction_id: {
      "@type": "internal.transactionId",
      lt: info.lastTxLt.toString(),
      hash: info.lastTxHash.toString("base64"),
    },
    block_id: blockIdJson(block),
    frozen_hash: info.frozenHash ? info.frozenHash.toString("base64") : "",
    sync_utime: syncUtime,
    state: info.state,
  };
}

/** The text of a comment body (op 0 + UTF-8 snake string), or undefined when the body is not a comment. */
export function commentOf(body: Cell): string | undefined {
  try {
    const s = body.beginParse();
    if (s.remainingBits < 32 || s.loadUint(32) !== TEXT_COMMENT_OP) return undefined;
    return s.loadStringTail();
  } catch {
    return undefined;
  }
}

export function messageJson(m: Message): Json {
  const info = m.info;
  const source = info.type === "external-in" ? "" : friendly(info.src);
  const destination = info.type === "external-out" ? (info.dest ? info.dest.toString() : "") : friendly(info.dest);
  const text = commentOf(m.body);
  return {
    "@type": "raw.message",
    hash: "",
    source,
    destination,
    value: info.type === "internal" ? info.value.coins.toString() : "0",
    extra_currencies: [],
    fwd_fee: info.type === "internal" ? info.forwardFee.toString() : "0",
    ihr_fee: info.type === "internal" ? info.ihrFee.toString() : "0",
    created_lt: info.type === "external-in" ? "0" : info.createdLt.toString(),
    body_hash: m.body.hash().toString("base64"),
    msg_data: {
      "@type": "msg.dataRaw",
      body: m.body.toBoc().toString("base64"),
      init_state: "",
    },
    message: text ?? "",
  };
}

export function transactionJson(st: StoredTransaction): Json {
  const cell = Cell.fromBoc(st.boc)[0];
  const tx = loadTransaction(cell.beginParse());
  const fee = tx.totalFees.coins;
  const d = tx.description;
  const storageFee = d.type === "generic" ? d.storagePhase?.storageFeesCollected ?? 0n : 0n;
  const outMsgs: Json[] = [];
  for (const m of tx.outMessages.values()) outMsgs.push(messageJson(m));
  const inMsg = tx.inMessage ? messageJson(tx.inMessage) : null;
  const out: { [k: string]: Json } = {
    "@type": "raw.transaction",
    address: { "@type": "accountAddress", account_address: friendly(Address.parseRaw(st.account)) },
    utime: st.utime,
    data: st.boc.toString("base64"),
    transaction_id: { "@type": "internal.transactionId", lt: st.lt.toString(), hash: st.hash.toString("base64") },
    fee: fee.toString(),
    storage_fee: storageFee.toString(),
    other_fee: (fee - storageFee).toString(),
    out_msgs: outMsgs,
  };
  if (inMsg) out.in_msg = inMsg;
  return out;
}

export function feesJson(f: FeeEstimate): Json {
  return {
    "@type": "query.fees",
    source_fees: {
      "@type": "fees",
      in_fwd_fee: Number(f.inFwdFee),
      storage_fee: Number(f.storageFee),
      gas_fee: Number(f.gasFee),
      fwd_fee: Number(f.fwdFee),
    },
    destination_fees: [],
  };
}

function hexInt(v: bigint): string {
  return v < 0n ? "-0x" + (-v).toString(16) : "0x" + v.toString(16);
}

/** A stack entry inside a tuple uses TON Center's verbose `tvm.stackEntry*` form. */
function stackEntryJson(item: TupleItem): Json {
  switch (item.type) {
    case "int":
      return { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: item.value.toString() } };
    case "cell":
      return { "@type": "tvm.stackEntryCell", cell: { "@type": "tvm.cell", bytes: item.cell.toBoc().toString("base64") } };
    case "slice":
    case "builder":
      return { "@type": "tvm.stackEntrySlice", slice: { "@type": "tvm.slice", bytes: item.cell.toBoc().toString("base64") } };
    case "tuple":
      return { "@type": "tvm.stackEntryTuple", tuple: { "@type": "tvm.tuple", elements: item.items.map(stackEntryJson) } };
    case "null":
      return { "@type": "tvm.stackEntryList", list: { "@type": "tvm.list", elements: [] } };
    case "nan":
      return { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "NaN" } };
  }
}

/** A top-level stack item in `runGetMethod`'s compact form: `["num","0x..."]`, `["cell",{bytes}]`, ... */
export function stackItemJson(item: TupleItem): Json {
  switch (item.type) {
    case "int":
      return ["num", hexInt(item.value)];
    case "null":
      return ["null", null];
    case "nan":
      return ["num", "NaN"];
    case "cell":
      return ["cell", { bytes: item.cell.toBoc().toString("base64") }];
    case "slice":
      return ["slice", { bytes: item.cell.toBoc().toString("base64") }];
    case "builder":
      return ["builder", { bytes: item.cell.toBoc().toString("base64") }];
    case "tuple":
      return ["tuple", { "@type": "tvm.tuple", elements: item.items.map(stackEntryJson) }];
  }
}

/** Decodes an external message BoC (sendBoc); throws a clear Error on anything else. */
export function parseExternalBoc(boc: Buffer): { message: Message; cell: Cell } {
  let cells: Cell[];
  try {
    cells = Cell.fromBoc(boc);
  } catch (e) {
    throw new Error(`boc is not a valid bag of cells: ${(e as Error).message}`);
  }
  if (cells.length !== 1) throw new Error(`boc must hold exactly one root cell (the message), found ${cells.length}`);
  try {
    return { message: loadMessage(cells[0].beginParse()), cell: cells[0] };
  } catch (e) {
    throw new Error(`boc root cell is not a TON message: ${(e as Error).message}`);
  }
}
