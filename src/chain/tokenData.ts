/**
 * TON Center's `getTokenData`: recognises a Jetton master / wallet or an NFT collection / item by which standard
 * get-method answers (TEP-74, TEP-62), decodes its data and content (TEP-64), and checks a jetton wallet or NFT item
 * against its master / collection. Anything else is 409 "not Jetton or NFT", as on TON Center.
 */
import { Address, beginCell, Cell, Dictionary, Slice, TupleItem } from "@ton/core";
import { createHash } from "node:crypto";
import { ChainError, LocalChain } from "./localChain.js";
import type { Json } from "./toncenterFormat.js";

/** TEP-64 on-chain content keys TON Center decodes (the dictionary is keyed by sha256 of the name). */
const CONTENT_KEYS = ["uri", "name", "description", "image", "image_data", "symbol", "decimals", "amount_style", "render_type"];

function raw(a: Address): string {
  return a.toRawString();
}

function addressOf(item: TupleItem | undefined): Address | null {
  if (!item || (item.type !== "slice" && item.type !== "cell")) return null;
  try {
    return item.cell.beginParse().loadMaybeAddress();
  } catch {
    return null;
  }
}

function intOf(item: TupleItem | undefined, what: string): bigint {
  if (item?.type !== "int") throw new ChainError(500, `${what}: the get-method did not return an integer`);
  return item.value;
}

function cellOf(item: TupleItem | undefined, what: string): Cell {
  if (!item || (item.type !== "cell" && item.type !== "slice")) throw new ChainError(500, `${what}: the get-method did not return a cell`);
  return item.cell;
}

/** A snake-format string (TEP-64): the bits of the cell and of its first-ref chain. */
function snakeText(s: Slice): string {
  return s.loadStringTail();
}

/** TEP-64 content: 0x01 + URI (off-chain), or 0x00 + dictionary of sha256(key) -> 0x00 + snake text (on-chain). */
export function tokenContent(content: Cell): Json {
  const s = content.beginParse();
  if (s.remainingBits < 8) return { type: "offchain", data: "" };
  const prefix = s.loadUint(8);
  if (prefix === 0x01) return { type: "offchain", data: snakeText(s) };
  if (prefix !== 0x00) throw new ChainError(500, `token content starts with unknown prefix 0x${prefix.toString(16)}`);
  const dict = s.loadDict(Dictionary.Keys.BigUint(256), Dictionary.Values.Cell());
  const data: { [k: string]: Json } = {};
  for (const key of CONTENT_KEYS) {
    const v = dict.get(BigInt("0x" + createHash("sha256").update(key).digest("hex")));
    if (!v) continue;
    const vs = v.beginParse();
    if (vs.remainingBits >= 8 && vs.preloadUint(8) === 0x00) vs.skip(8);
    try {
      data[key] = snakeText(vs);
    } catch {
      // chunked (0x01) values and malformed strings are left out rather than guessed
    }
  }
  return { type: "onchain", data };
}

async function run(chain: LocalChain, a: Address, method: string, stack: TupleItem[] = []) {
  return chain.runGetMethod(a, method, stack);
}

export async function tokenData(chain: LocalChain, address: Address): Promise<Json> {
  const [master, wallet, collection, item] = await Promise.all([
    run(chain, address, "get_jetton_data"), run(chain, address, "get_wallet_data"),
    run(chain, address, "get_collection_data"), run(chain, address, "get_nft_data"),
  ]);
  const self = raw(address);
  if (master.exitCode === 0) {
    const st = master.stack;
    const admin = addressOf(st[2]);
    return {
      "@type": "ext.tokens.jettonMasterData", address: self, contract_type: "jetton_master",
      total_supply: intOf(st[0], "total_supply").toString(), mintable: intOf(st[1], "mintable") !== 0n,
      ...(admin ? { admin_address: raw(admin) } : {}),
      jetton_content: tokenContent(cellOf(st[3], "jetton_content")),
      jetton_wallet_code: cellOf(st[4], "jetton_wallet_code").toBoc().toString("base64"),
    };
  }
  if (wallet.exitCode === 0) {
    const st = wallet.stack;
    const owner = addressOf(st[1]);
    const jetton = addressOf(st[2]);
    if (!owner || !jetton) throw new ChainError(500, "get_wallet_data did not return owner and jetton addresses");
    const check = await run(chain, jetton, "get_wallet_address", [{ type: "slice", cell: beginCell().storeAddress(owner).endCell() }]);
    if (check.exitCode !== 0 || !addressOf(check.stack[0])?.equals(address)) {
      throw new ChainError(409, "Verification on master failed: the jetton master does not list this wallet");
    }
    return {
      "@type": "ext.tokens.jettonWalletData", address: self, contract_type: "jetton_wallet",
      balance: intOf(st[0], "balance").toString(), owner: raw(owner), jetton: raw(jetton),
      jetton_wallet_code: cellOf(st[3], "jetton_wallet_code").toBoc().toString("base64"),
    };
  }
  if (collection.exitCode === 0) {
    const st = collection.stack;
    const owner = addressOf(st[2]);
    return {
      "@type": "ext.tokens.nftCollectionData", address: self, contract_type: "nft_collection",
      next_item_index: intOf(st[0], "next_item_index").toString(),
      collection_content: tokenContent(cellOf(st[1], "collection_content")),
      ...(owner ? { owner_address: raw(owner) } : {}),
    };
  }
  if (item.exitCode === 0) {
    const st = item.stack;
    const index = intOf(st[1], "index");
    const coll = addressOf(st[2]);
    const owner = addressOf(st[3]);
    const individual = cellOf(st[4], "individual_content");
    let content: Json;
    if (coll) {
      const check = await run(chain, coll, "get_nft_address_by_index", [{ type: "int", value: index }]);
      if (check.exitCode !== 0 || !addressOf(check.stack[0])?.equals(address)) {
        throw new ChainError(409, "Verification on collection failed: the collection does not list this item");
      }
      const full = await run(chain, coll, "get_nft_content", [{ type: "int", value: index }, { type: "cell", cell: individual }]);
      if (full.exitCode !== 0) throw new ChainError(500, `get_nft_content exit code ${full.exitCode} != 0`);
      content = tokenContent(cellOf(full.stack[0], "nft content"));
    } else {
      content = tokenContent(individual);
    }
    return {
      "@type": "ext.tokens.nftItemData", address: self, contract_type: "nft_item",
      init: intOf(st[0], "init") !== 0n, index: index.toString(),
      ...(coll ? { collection_address: raw(coll) } : {}), ...(owner ? { owner_address: raw(owner) } : {}),
      content,
    };
  }
  throw new ChainError(409, `Smart contract ${address.toString()} is not Jetton or NFT`);
}
