/**
 * Standard wallet contracts recognised by the hash of their code, as TON Center's getWalletInformation does: the
 * `wallet_type` names are TON Center's, and seqno / wallet_id / is_signature_allowed are read from the data cell (no
 * get-method run), as signed 32-bit fields the way TON Center reads them.
 */
import { Cell } from "@ton/core";

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

/**
 * Code cell hash (base64) → wallet. The hashes are the published wallet codes' (test/chain/known-wallets.test.ts
 * checks them against `@ton/ton`'s wallet contracts; v4 r1 is not among those).
 */
export const KNOWN_WALLET_CODE_HASHES: ReadonlyMap<string, { type: WalletType; layout: Layout }> = new Map([
  ["oM/CxIruFqJx8s/AtzgtgXVs7LEBfQd/qqs7tgL2how=", { type: "wallet v1 r1", layout: "seqno" }],
  ["1JAvzJ+tdGmPqONTIgpo2g3PcuMryy657gQhfBfTBiw=", { type: "wallet v1 r2", layout: "seqno" }],
  ["WHzHie/xyE9G7DeX5F/ICaFP9a4k8eDHpqmcydyQYf8=", { type: "wallet v1 r3", layout: "seqno" }],
  ["XJpeaMEI4YchoHxC+ZVr+zmtd+xtYktgxXbsiO7mUyk=", { type: "wallet v2 r1", layout: "seqno" }],
  ["/pUw0yQ4Uwg+8u8LTCkIwKv2+hwx6iQ6rKpb+MfXU/E=", { type: "wallet v2 r2", layout: "seqno" }],
  ["thBBpYp5gLlG6PueGY48kE0keZ/6NldOpCUcQaVm9YE=", { type: "wallet v3 r1", layout: "seqno+id" }],
  ["hNr6RJ+Ypph3ibojI1gHK8D3bcRSQAKl0JGLmnXS1Zk=", { type: "wallet v3 r2", layout: "seqno+id" }],
  ["ZN1UgFUixb6KnbWc6gEFzPDQh4bKeb64y3nogKjXMi0=", { type: "wallet v4 r1", layout: "seqno+id" }],
  ["/rX/aCDi/w2Ug+fg1iyBfYRniftK5YDIeIZtlZ2r1cA=", { type: "wallet v4 r2", layout: "seqno+id" }],
  ["89fKU0k97trCizgZhqhJQDy6w9LFhHea8IEGWvCsS5M=", { type: "wallet v5 beta", layout: "v5" }],
  ["IINLe3KxEhR+Gy+0V7hOdNGjDwT3N9T2KmaOlVLSty8=", { type: "wallet v5 r1", layout: "v5" }],
]);

/** The wallet fields of an account whose code is a standard wallet, or undefined for any other contract. */
export function walletFields(code: Cell | null, data: Cell | null): WalletFields | undefined {
  if (!code || !data) return undefined;
  const w = KNOWN_WALLET_CODE_HASHES.get(code.hash().toString("base64"));
  if (!w) return undefined;
  try {
    const s = data.beginParse();
    switch (w.layout) {
      case "seqno":
        return { wallet_type: w.type, seqno: s.loadInt(32) };
      case "seqno+id":
        return { wallet_type: w.type, seqno: s.loadInt(32), wallet_id: s.loadInt(32) };
      case "v5": {
        const allowed = s.loadBit();
        return { wallet_type: w.type, is_signature_allowed: allowed, seqno: s.loadInt(32), wallet_id: s.loadInt(32) };
      }
    }
  } catch {
    return undefined; // wallet code with data too short to be one: report it as not a wallet rather than guess
  }
}
