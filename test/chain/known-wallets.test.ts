import { test } from "node:test";
import assert from "node:assert/strict";
import { beginCell, Cell } from "@ton/core";
import {
  WalletContractV1R1, WalletContractV1R2, WalletContractV1R3, WalletContractV2R1, WalletContractV2R2,
  WalletContractV3R1, WalletContractV3R2, WalletContractV4, WalletContractV5Beta, WalletContractV5R1,
} from "@ton/ton";
import { KNOWN_WALLET_CODE_HASHES, walletFields } from "../../src/chain/knownWallets.js";

const key = Buffer.alloc(32, 5);

test("the wallet code hashes are those of @ton/ton's wallet contracts; fields come from the data cell", () => {
  const wallets: [string, { code: Cell; data: Cell }][] = [
    ["wallet v1 r1", WalletContractV1R1.create({ workchain: 0, publicKey: key }).init],
    ["wallet v1 r2", WalletContractV1R2.create({ workchain: 0, publicKey: key }).init],
    ["wallet v1 r3", WalletContractV1R3.create({ workchain: 0, publicKey: key }).init],
    ["wallet v2 r1", WalletContractV2R1.create({ workchain: 0, publicKey: key }).init],
    ["wallet v2 r2", WalletContractV2R2.create({ workchain: 0, publicKey: key }).init],
    ["wallet v3 r1", WalletContractV3R1.create({ workchain: 0, publicKey: key }).init],
    ["wallet v3 r2", WalletContractV3R2.create({ workchain: 0, publicKey: key }).init],
    ["wallet v4 r2", WalletContractV4.create({ workchain: 0, publicKey: key }).init],
    ["wallet v5 beta", WalletContractV5Beta.create({ publicKey: key }).init],
    ["wallet v5 r1", WalletContractV5R1.create({ publicKey: key, walletId: { networkGlobalId: -42 } }).init],
  ];
  for (const [type, init] of wallets) {
    const f = walletFields(init.code, init.data);
    assert.equal(f?.wallet_type, type, `${type}: code hash ${init.code.hash().toString("base64")}`);
    assert.equal(f.seqno, 0);
  }
  assert.equal(KNOWN_WALLET_CODE_HASHES.size, wallets.length + 1, "v4 r1 is known by hash only");
  // v3/v4 read seqno then wallet id; v5 r1 its flag, seqno and the (signed) wallet id.
  const v4 = walletFields(wallets[7][1].code, beginCell().storeUint(7, 32).storeUint(698983191, 32).storeBuffer(key).storeBit(0).endCell());
  assert.deepEqual(v4, { wallet_type: "wallet v4 r2", seqno: 7, wallet_id: 698983191 });
  const v5 = walletFields(wallets[9][1].code, wallets[9][1].data)!;
  assert.equal(v5.is_signature_allowed, true);
  const mainnet = WalletContractV5R1.create({ publicKey: key, walletId: { networkGlobalId: -239 } }).init;
  const v5main = walletFields(mainnet.code, mainnet.data)!;
  assert.notEqual(v5.wallet_id, v5main.wallet_id, "the network's global id is folded into the wallet id");
  for (const id of [v5.wallet_id!, v5main.wallet_id!]) assert.ok(Number.isInteger(id) && id >= -(2 ** 31) && id < 2 ** 31);
  // Read signed, as TON Center does: a wallet id with the top bit set is negative.
  const high = walletFields(wallets[7][1].code, beginCell().storeUint(1, 32).storeUint(0xfffffffe, 32).storeBuffer(key).storeBit(0).endCell());
  assert.equal(high?.wallet_id, -2);
  // Not a wallet: other code, or wallet code with a data cell too short to hold the fields.
  assert.equal(walletFields(beginCell().storeUint(1, 8).endCell(), wallets[0][1].data), undefined);
  assert.equal(walletFields(wallets[7][1].code, beginCell().storeUint(1, 8).endCell()), undefined);
});
