/**
 * Standard wallet contracts recognised by their code, as TON Center's getWalletInformation does: the `wallet_type`
 * names are TON Center's, and seqno / wallet_id / is_signature_allowed are read from the data cell (no get-method run).
 */
import { Cell } from "@ton/core";
import {
  WalletContractV1R1, WalletContractV1R2, WalletContractV1R3, WalletContractV2R1, WalletContractV2R2,
  WalletContractV3R1, WalletContractV3R2, WalletContractV4, WalletContractV5Beta, WalletContractV5R1,
} from "@ton/ton";

export type WalletType =
  | "wallet v1 r1" | "wallet v1 r2" | "wallet v1 r3" | "wallet v2 r1" | "wallet v2 r2" | "wallet v3 r1" | "wallet v3 r2"
  | "wallet v4 r1" | "wallet v4 r2" | "wallet v5 beta" | "wallet v5 r1";

export interface WalletFields {
  wallet_type: WalletType;
  seqno: number;
  wallet_id?: number;
  is_signature_allowed?: boolean;
}

/** How a wallet's data cell starts: seqno only (v1, v2), seqno + wallet id (v3, v4), or v5's flag + seqno + id. */
type Layout = "seqno" | "seqno+id" | "v5";

const KEY = Buffer.alloc(32);

function codeHash(code: Cell | undefined): string {
  if (!code) throw new Error("wallet contract without code");
  return code.hash().toString("hex");
}

let table: Map<string, { type: WalletType; layout: Layout }> | undefined;

/** Built on first use: creating the wallet contracts parses their code BoCs. */
function known(): Map<string, { type: WalletType; layout: Layout }> {
  if (table) return table;
  const entries: [Cell | undefined, WalletType, Layout][] = [
    [WalletContractV1R1.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v1 r1", "seqno"],
    [WalletContractV1R2.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v1 r2", "seqno"],
    [WalletContractV1R3.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v1 r3", "seqno"],
    [WalletContractV2R1.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v2 r1", "seqno"],
    [WalletContractV2R2.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v2 r2", "seqno"],
    [WalletContractV3R1.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v3 r1", "seqno+id"],
    [WalletContractV3R2.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v3 r2", "seqno+id"],
    [WalletContractV4.create({ workchain: 0, publicKey: KEY }).init.code, "wallet v4 r2", "seqno+id"],
    [WalletContractV5Beta.create({ publicKey: KEY }).init.code, "wallet v5 beta", "v5"],
    [WalletContractV5R1.create({ publicKey: KEY }).init.code, "wallet v5 r1", "v5"],
  ];
  table = new Map(entries.map(([code, type, layout]) => [codeHash(code), { type, layout }]));
  return table;
}

/** The wallet fields of an account whose code is a standard wallet, or undefined for any other contract. */
export function walletFields(code: Cell | null, data: Cell | null): WalletFields | undefined {
  if (!code || !data) return undefined;
  const w = known().get(code.hash().toString("hex"));
  if (!w) return undefined;
  try {
    const s = data.beginParse();
    switch (w.layout) {
      case "seqno":
        return { wallet_type: w.type, seqno: s.loadUint(32) };
      case "seqno+id":
        return { wallet_type: w.type, seqno: s.loadUint(32), wallet_id: s.loadUint(32) };
      case "v5": {
        // v5 r1: is_signature_allowed:1 seqno:32 wallet_id:32 ... (TON Center reads the same bits for v5 beta).
        const allowed = s.loadBit();
        return { wallet_type: w.type, is_signature_allowed: allowed, seqno: s.loadUint(32), wallet_id: s.loadUint(32) };
      }
    }
  } catch {
    return undefined; // wallet code with data too short to be one: report it as not a wallet rather than guess
  }
}
