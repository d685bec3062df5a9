/**
 * Off-chain vouchers for the Cocoon contracts: build the cells exactly as contracts/shared.tolk lays them out,
 * sign them with Ed25519 (crypto/curve25519.ts: libsodium or node:crypto, far faster than tweetnacl, byte-identical
 * signatures), verify them,
 * and move signed vouchers between processes as bytes.
 *
 * Voucher cells (no refs; the signature is Ed25519 over the cell's representation hash `cell.hash()`,
 * which is what the contracts check with CHKSIGNU). `global_id` is the network's TON global id (mainnet -239,
 * testnet -3, devnet its own; see chain/network.ts): the contracts refuse a voucher for another network.
 *   payment (client -> proxy):  tag:uint32 = 0x43505931 global_id:int32 channel:MsgAddressInt cumulative:Coins
 *   close   (client -> proxy):  tag:uint32 = 0x43434c31 global_id:int32 channel:MsgAddressInt cumulative:Coins
 *   payout  (proxy -> worker):  tag:uint32 = 0x50575031 global_id:int32 proxy:MsgAddressInt worker:MsgAddressInt cumulative:Coins
 *
 * Signed voucher on the wire (`encodeSignedVoucher`): a one-cell-plus-ref BoC
 *   root: signature:bits512, ref 0 = the voucher cell.
 */
import { Address, beginCell, Cell, crc32c } from "@ton/core";
import {
  ED25519_PUBLIC_KEY_BYTES,
  ED25519_SEED_BYTES,
  ED25519_SIGNATURE_BYTES,
  ed25519SignerFromSeed,
  ed25519Verify,
  type Ed25519Signer,
} from "../crypto/curve25519.js";

export { ED25519_PUBLIC_KEY_BYTES, ED25519_SEED_BYTES, ED25519_SIGNATURE_BYTES, type Ed25519Signer };

export const VoucherTag = {
  PAYMENT: 0x43505931,
  CLOSE: 0x43434c31,
  PAYOUT: 0x50575031,
} as const;
export type VoucherKind = "payment" | "close" | "payout";

/** Largest BoC we accept for a signed voucher (a voucher is two small cells, ~150 bytes). */
export const MAX_SIGNED_VOUCHER_BYTES = 1024;
/** Largest amount a Coins field can hold (VarUInteger 16: 15 bytes). */
export const MAX_COINS = (1n << 120n) - 1n;

export interface ChannelVoucher {
  kind: "payment" | "close";
  /** TON global id of the network the channel lives on. */
  globalId: number;
  channel: Address;
  cumulative: bigint;
}
export interface PayoutVoucher {
  kind: "payout";
  /** TON global id of the network the proxy contract lives on. */
  globalId: number;
  proxy: Address;
  worker: Address;
  cumulative: bigint;
}
export type Voucher = ChannelVoucher | PayoutVoucher;

export interface SignedVoucher {
  cell: Cell;
  signature: Buffer;
}

function checkCoins(x: bigint, what: string): void {
  if (typeof x !== "bigint" || x < 0n || x > MAX_COINS) {
    throw new Error(`${what} must be a bigint nanoTON amount in 0..2^120-1, got ${String(x)}`);
  }
}

/** Throws unless `x` is a TON global id (int32). */
export function checkGlobalId(x: number, what = "global id"): number {
  if (!Number.isInteger(x) || x < -0x80000000 || x > 0x7fffffff) {
    throw new Error(`${what} must be a TON global id (int32, e.g. -239 mainnet, -3 testnet), got ${String(x)}`);
  }
  return x;
}

/** Builds the cell of a voucher. */
export function voucherCell(v: Voucher): Cell {
  checkCoins(v.cumulative, "voucher cumulative");
  checkGlobalId(v.globalId, "voucher globalId");
  if (v.kind === "payout") {
    return beginCell().storeUint(VoucherTag.PAYOUT, 32).storeInt(v.globalId, 32).storeAddress(v.proxy).storeAddress(v.worker).storeCoins(v.cumulative).endCell();
  }
  const tag = v.kind === "payment" ? VoucherTag.PAYMENT : VoucherTag.CLOSE;
  return beginCell().storeUint(tag, 32).storeInt(v.globalId, 32).storeAddress(v.channel).storeCoins(v.cumulative).endCell();
}

/**
 * Parses a voucher cell (untrusted input). Throws an Error saying what is wrong; never returns a partial voucher.
 */
export function parseVoucherCell(cell: Cell): Voucher {
  try {
    const s = cell.beginParse();
    if (cell.refs.length !== 0) throw new Error("a voucher cell has no references");
    const tag = s.loadUint(32);
    let v: Voucher;
    if (tag === VoucherTag.PAYMENT || tag === VoucherTag.CLOSE) {
      const globalId = s.loadInt(32);
      const channel = s.loadAddress();
      const cumulative = s.loadCoins();
      v = { kind: tag === VoucherTag.PAYMENT ? "payment" : "close", globalId, channel, cumulative };
    } else if (tag === VoucherTag.PAYOUT) {
      const globalId = s.loadInt(32);
      const proxy = s.loadAddress();
      const worker = s.loadAddress();
      const cumulative = s.loadCoins();
      v = { kind: "payout", globalId, proxy, worker, cumulative };
    } else {
      throw new Error(`unknown voucher tag 0x${tag.toString(16)}`);
    }
    if (s.remainingBits !== 0) throw new Error(`${s.remainingBits} extra bits after the voucher`);
    return v;
  } catch (e) {
    throw new Error(`Invalid voucher cell: ${(e as Error).message}`);
  }
}

/** Creates a signer from a 32-byte Ed25519 seed (e.g. `keyPair.secretKey.subarray(0, 32)` of @ton/crypto). */
export function ed25519Signer(seed: Buffer | Uint8Array): Ed25519Signer {
  return ed25519SignerFromSeed(seed);
}

/** Signs a voucher: Ed25519 over `voucherCell(v).hash()`. */
export function signVoucher(v: Voucher, signer: Ed25519Signer): SignedVoucher {
  const cell = voucherCell(v);
  return { cell, signature: signer.sign(cell.hash()) };
}

/** True iff `signature` is a valid Ed25519 signature of `cell.hash()` by `publicKey`. Never throws on bad sizes. */
export function verifyVoucherSignature(cell: Cell, signature: Buffer, publicKey: Buffer): boolean {
  return ed25519Verify(cell.hash(), signature, publicKey);
}

/** Serializes a signed voucher to bytes (BoC: root = signature, ref = voucher cell). */
export function encodeSignedVoucher(sv: SignedVoucher): Buffer {
  if (sv.signature.length !== ED25519_SIGNATURE_BYTES) throw new Error(`signature must be ${ED25519_SIGNATURE_BYTES} bytes`);
  if (!sv.cell.isExotic && sv.cell.refs.length === 0) return twoCellBoc(sv.signature, sv.cell);
  return beginCell().storeBuffer(sv.signature).storeRef(sv.cell).endCell().toBoc();
}

/** BoC header of a signed voucher: magic, flags (crc32c, 1-byte cell indexes), 1-byte offsets, 2 cells, 1 root, 0 absent. */
const SIGNED_VOUCHER_BOC_MAGIC = Buffer.from("b5ee9c72", "hex");
const BOC_FLAGS_CRC32C_SIZE1 = 0x41;
/** Root cell: descriptors (1 ref; 512 bits = 64 full bytes), the signature, the index of its one ref. */
const ROOT_CELL_BYTES = 2 + ED25519_SIGNATURE_BYTES + 1;

/**
 * The BoC that @ton/core's `beginCell().storeBuffer(signature).storeRef(cell).endCell().toBoc()` writes, for a voucher
 * cell without refs, laid out directly (standard BoC, TON's tvm.tlb `serialized_boc#b5ee9c72`): every client answer is
 * paid with a new voucher, and building the root cell (its hash, in JavaScript) plus the generic serializer cost more
 * than the signature. Byte-identity with @ton/core is tested on random vouchers (test/chain/vouchers.test.ts).
 */
function twoCellBoc(signature: Buffer, cell: Cell): Buffer {
  const bits = cell.bits;
  const dataBytes = Math.ceil(bits.length / 8);
  const cellsSize = ROOT_CELL_BYTES + 2 + dataBytes;
  const out = Buffer.alloc(SIGNED_VOUCHER_BOC_MAGIC.length + 7 + cellsSize + 4);
  let o = SIGNED_VOUCHER_BOC_MAGIC.copy(out, 0);
  out[o++] = BOC_FLAGS_CRC32C_SIZE1;
  out[o++] = 1; // offset bytes
  out[o++] = 2; // cells
  out[o++] = 1; // roots
  out[o++] = 0; // absent
  out[o++] = cellsSize; // total cells size (< 256: a voucher cell holds at most 1023 bits)
  out[o++] = 0; // root index
  out[o++] = 1; // root: one ref, ordinary, level 0
  out[o++] = 2 * ED25519_SIGNATURE_BYTES; // root: 512 bits = 64 whole bytes
  o += signature.copy(out, o);
  out[o++] = 1; // root's ref: cell 1
  out[o++] = 0; // voucher cell: no refs, ordinary, level 0
  out[o++] = Math.ceil(bits.length / 8) + Math.floor(bits.length / 8);
  for (let i = 0; i < bits.length; i++) if (bits.at(i)) out[o + (i >> 3)] |= 0x80 >> (i & 7);
  if (bits.length % 8) out[o + (bits.length >> 3)] |= 0x80 >> (bits.length & 7); // completion tag of the last byte
  o += dataBytes;
  crc32c(out.subarray(0, o)).copy(out, o);
  return out;
}

/**
 * Parses bytes from `encodeSignedVoucher` (untrusted input): checks the layout and that the voucher parses.
 * Does NOT check the signature; call `verifyVoucherSignature` with the key you expect.
 */
export function decodeSignedVoucher(bytes: Buffer | Uint8Array): { signed: SignedVoucher; voucher: Voucher } {
  if (bytes.length > MAX_SIGNED_VOUCHER_BYTES) {
    throw new Error(`Invalid signed voucher: ${bytes.length} bytes, at most ${MAX_SIGNED_VOUCHER_BYTES} expected`);
  }
  let roots: Cell[];
  try {
    roots = Cell.fromBoc(Buffer.from(bytes));
  } catch (e) {
    throw new Error(`Invalid signed voucher: not a BoC (${(e as Error).message})`);
  }
  if (roots.length !== 1) throw new Error(`Invalid signed voucher: expected 1 root cell, got ${roots.length}`);
  const root = roots[0];
  if (root.isExotic) throw new Error("Invalid signed voucher: exotic cell");
  if (root.bits.length !== ED25519_SIGNATURE_BYTES * 8 || root.refs.length !== 1) {
    throw new Error(`Invalid signed voucher: root must hold a 512-bit signature and 1 ref, has ${root.bits.length} bits and ${root.refs.length} refs`);
  }
  const cell = root.refs[0];
  if (cell.isExotic) throw new Error("Invalid signed voucher: exotic voucher cell");
  const signature = root.beginParse().loadBuffer(ED25519_SIGNATURE_BYTES);
  const voucher = parseVoucherCell(cell);
  return { signed: { cell, signature }, voucher };
}

/**
 * Parses and verifies a signed voucher in one go, checking it is of the expected kind and for the expected
 * contract. Throws an Error naming the first check that failed.
 */
export function verifySignedVoucher(
  sv: SignedVoucher,
  expect: { kind: VoucherKind; publicKey: Buffer; contract: Address; worker?: Address; globalId: number },
): Voucher {
  const v = parseVoucherCell(sv.cell);
  if (v.kind !== expect.kind) throw new Error(`Voucher is a ${v.kind} voucher, expected ${expect.kind}`);
  if (v.globalId !== expect.globalId) {
    throw new Error(`Voucher is for the network with global id ${v.globalId}, expected ${expect.globalId} (vouchers of one network are void on another)`);
  }
  const target = v.kind === "payout" ? v.proxy : v.channel;
  if (!target.equals(expect.contract)) {
    throw new Error(`Voucher is for ${target.toString()}, expected ${expect.contract.toString()}`);
  }
  if (v.kind === "payout" && expect.worker && !v.worker.equals(expect.worker)) {
    throw new Error(`Payout voucher names worker ${v.worker.toString()}, expected ${expect.worker.toString()}`);
  }
  if (!verifyVoucherSignature(sv.cell, sv.signature, expect.publicKey)) {
    throw new Error("Voucher signature does not verify with the expected public key");
  }
  return v;
}
