/**
 * Conversions between TON objects and the JSON shapes of TON Center API v2 (what `@ton/ton`'s TonClient parses with
 * zod): block ids, account states, messages, transactions and get-method stacks.
 */
import {
  Address, beginCell, Cell, Dictionary, loadMessage, loadTransaction, Message, storeStateInit, TupleItem,
} from "@ton/core";
import type { AccountInfo, BlockId, FeeEstimate } from "./localChain.js";
import type { StoredTransaction } from "./chainStore.js";

/** Opcode 0 in the first 32 bits of a message body marks a text comment. */
const TEXT_COMMENT_OP = 0;

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface BlockIdJson {
  "@type": "ton.blockIdExt"; workchain: number; shard: string; seqno: number; root_hash: string; file_hash: string;
  [k: string]: Json;
}

export function blockIdJson(b: BlockId): BlockIdJson {
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

/** A cell's data bits as bytes, the last byte zero-padded (what TON Center prints as a raw message's `message`). */
function dataBytes(c: Cell): Buffer {
  const out = Buffer.alloc(Math.ceil(c.bits.length / 8));
  for (let i = 0; i < c.bits.length; i++) if (c.bits.at(i)) out[i >> 3] |= 0x80 >> (i & 7);
  return out;
}

/**
 * The normalized hash of an external-in message (TEP-467): src addr_none, import_fee 0, no init, body as a reference.
 * Wallets and explorers find a sent message by it whatever wrapper (init, inline body) the sender chose.
 */
export function normalizedExternalHash(m: Message): Buffer {
  if (m.info.type !== "external-in") throw new Error("only external-in messages have a normalized hash");
  return beginCell()
    .storeUint(0b10, 2).storeUint(0, 2).storeAddress(m.info.dest).storeCoins(0)
    .storeBit(false).storeBit(true).storeRef(m.body)
    .endCell().hash();
}

function rawMessageText(body: Cell): string {
  const b = dataBytes(body);
  return b.length === 0 ? "" : b.toString("base64") + "\n";
}

/** A message as TON Center prints it (`ext.message`): a text comment comes as `msg.dataText` (base64 of the UTF-8 text). */
export function messageJson(m: Message, cell: Cell): Json {
  const info = m.info;
  const source = info.type === "external-in" ? "" : friendly(info.src);
  const destination = info.type === "external-out" ? (info.dest ? info.dest.toString() : "") : friendly(info.dest);
  const text = commentOf(m.body);
  const msgData: Json = text !== undefined
    ? { "@type": "msg.dataText", text: Buffer.from(text, "utf8").toString("base64") }
    : {
      "@type": "msg.dataRaw",
      body: bocBase64(m.body),
      init_state: m.init ? bocBase64(beginCell().store(storeStateInit(m.init)).endCell()) : "",
    };
  return {
    "@type": "ext.message",
    hash: cell.hash().toString("base64"),
    source,
    destination,
    value: info.type === "internal" ? info.value.coins.toString() : "0",
    extra_currencies: [],
    fwd_fee: info.type === "internal" ? info.forwardFee.toString() : "0",
    ihr_fee: info.type === "internal" ? info.ihrFee.toString() : "0",
    created_lt: info.type === "external-in" ? "0" : info.createdLt.toString(),
    body_hash: m.body.hash().toString("base64"),
    msg_data: msgData,
    // A raw body's `message` is its root cell's bytes in base64 with a trailing newline, as TON Center prints it
    // (kept from its Python version's base64 codec).
    message: text ?? rawMessageText(m.body),
  };
}

/** The message cells of a transaction cell (`^[ in_msg:(Maybe ^Message) out_msgs:(HashmapE 15 ^Message) ]`). */
function messageCells(txCell: Cell): { inMsg?: Cell; outMsgs: Map<number, Cell> } {
  const s = txCell.refs[0].beginParse();
  const inMsg = s.loadBit() ? s.loadRef() : undefined;
  const dict = s.loadDict(Dictionary.Keys.Uint(15), {
    serialize: (v: Cell, b) => { b.storeRef(v); },
    parse: (sl) => sl.loadRef(),
  });
  return { inMsg, outMsgs: new Map(dict.keys().map((k) => [k, dict.get(k)!])) };
}

export function transactionJson(st: StoredTransaction): Json {
  const cell = Cell.fromBoc(st.boc)[0];
  const tx = loadTransaction(cell.beginParse());
  const cells = messageCells(cell);
  const fee = tx.totalFees.coins;
  const d = tx.description;
  const storageFee = d.type === "generic" ? d.storagePhase?.storageFeesCollected ?? 0n : 0n;
  const outMsgs: Json[] = [];
  for (const k of tx.outMessages.keys()) outMsgs.push(messageJson(tx.outMessages.get(k)!, cells.outMsgs.get(k)!));
  const inMsg = tx.inMessage && cells.inMsg ? messageJson(tx.inMessage, cells.inMsg) : null;
  const out: { [k: string]: Json } = {
    "@type": "ext.transaction",
    address: { "@type": "accountAddress", account_address: friendly(Address.parseRaw(st.account)) },
    account: st.account,
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

/**
 * A TVM list in tonlib's sense: null, or a pair whose second element is a list (`[a, [b, [c, null]]]`). tonlib (and so
 * TON Center) prints lists flattened (`tvm.list` of a, b, c), so a 2-tuple ending in null reads as a one-item list.
 */
function listItems(item: TupleItem): TupleItem[] | undefined {
  const items: TupleItem[] = [];
  let node = item;
  // Iterative: a long cons list must not overflow the JS stack.
  for (;;) {
    if (node.type === "null") return items;
    if (node.type !== "tuple" || node.items.length !== 2) return undefined;
    items.push(node.items[0]);
    node = node.items[1];
  }
}

function bocBase64(c: Cell): string {
  return c.toBoc().toString("base64");
}

/**
 * A stack entry inside a tuple or list, as tonlib prints it: slices and builders become `tvm.stackEntryCell` (tonlib
 * turns a slice into the cell holding its remaining bits and refs), null and cons lists become `tvm.stackEntryList`.
 */
function stackEntryJson(item: TupleItem): Json {
  switch (item.type) {
    case "int":
      return { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: item.value.toString() } };
    case "nan":
      return { "@type": "tvm.stackEntryNumber", number: { "@type": "tvm.numberDecimal", number: "NaN" } };
    case "cell":
    case "slice":
    case "builder":
      return { "@type": "tvm.stackEntryCell", cell: { "@type": "tvm.cell", bytes: bocBase64(item.cell) } };
    case "null":
    case "tuple": {
      const list = listItems(item);
      if (list) return { "@type": "tvm.stackEntryList", list: { "@type": "tvm.list", elements: list.map(stackEntryJson) } };
      return { "@type": "tvm.stackEntryTuple", tuple: { "@type": "tvm.tuple", elements: (item as { items: TupleItem[] }).items.map(stackEntryJson) } };
    }
  }
}

/** Most cells printed in one `object` tree: a DAG that shares cells would otherwise expand exponentially. */
const MAX_OBJECT_CELLS = 4096;

/**
 * TON Center's legacy JSON form of a cell, printed next to `bytes`: `{data:{b64,len},refs:[...],special}`.
 * Undefined when the tree would exceed MAX_OBJECT_CELLS nodes (then only `bytes` is printed).
 */
export function cellObject(root: Cell): Json | undefined {
  let budget = MAX_OBJECT_CELLS;
  const walk = (c: Cell): Json | undefined => {
    if (--budget < 0) return undefined;
    const refs: Json[] = [];
    for (const r of c.refs) {
      const o = walk(r);
      if (o === undefined) return undefined;
      refs.push(o);
    }
    return { data: { b64: dataBytes(c).toString("base64"), len: c.bits.length }, refs, special: c.isExotic };
  };
  return walk(root);
}

function cellEntry(c: Cell): Json {
  const object = cellObject(c);
  return object === undefined ? { bytes: bocBase64(c) } : { bytes: bocBase64(c), object };
}

/**
 * A top-level `runGetMethod` stack item as TON Center prints it: `["num","0x..."]`, `["cell",{bytes}]` (cells, slices
 * and builders alike), `["list",{"@type":"tvm.list",elements}]` (null and cons lists) or `["tuple",{...}]`.
 */
export function stackItemJson(item: TupleItem): Json {
  switch (item.type) {
    case "int":
      return ["num", hexInt(item.value)];
    case "nan":
      return ["num", "NaN"];
    case "cell":
    case "slice":
    case "builder":
      return ["cell", cellEntry(item.cell)];
    case "null":
    case "tuple": {
      const entry = stackEntryJson(item) as { list?: Json; tuple?: Json };
      return entry.list !== undefined ? ["list", entry.list] : ["tuple", entry.tuple as Json];
    }
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
