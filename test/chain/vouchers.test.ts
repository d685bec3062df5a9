// Off-chain vouchers: layout, Ed25519 signing with node:crypto, verification, transport encoding,
// fuzzing of the parsers, and acceptance on chain of a voucher that travelled as bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { Address, beginCell, Cell } from "@ton/core";
import { keyPairFromSeed, sign as naclSign } from "@ton/crypto";
import {
  VoucherTag, MAX_COINS, decodeSignedVoucher, ed25519Signer, encodeSignedVoucher, parseVoucherCell, signVoucher,
  verifySignedVoucher, verifyVoucherSignature, voucherCell, type Voucher,
} from "../../src/chain/vouchers.js";
import { makeWorld, expectOk, expectExit, TON, GLOBAL_ID } from "./contracts-helpers.js";
import { ContractError } from "../../src/chain/contracts/errors.js";

const addr = (n: number) => new Address(0, Buffer.alloc(32, n));
const CHANNEL = addr(1);
const PROXY = addr(2);
const WORKER = addr(3);

test("node:crypto signer matches @ton/crypto (same public key, byte-identical signatures)", () => {
  const seed = randomBytes(32);
  const signer = ed25519Signer(seed);
  const kp = keyPairFromSeed(seed);
  assert.deepEqual(signer.publicKey, kp.publicKey);
  const cell = voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 123n });
  assert.deepEqual(signer.sign(cell.hash()), naclSign(cell.hash(), kp.secretKey));
  assert.throws(() => ed25519Signer(randomBytes(31)), /32 bytes/);
});

test("voucher cells have the documented layout", () => {
  const p = voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 5n });
  let s = p.beginParse();
  assert.equal(s.loadUint(32), VoucherTag.PAYMENT);
  assert.equal(s.loadInt(32), GLOBAL_ID);
  assert.ok(s.loadAddress().equals(CHANNEL));
  assert.equal(s.loadCoins(), 5n);
  assert.equal(s.remainingBits + s.remainingRefs, 0);
  const c = voucherCell({ kind: "close", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 5n });
  assert.equal(c.beginParse().loadUint(32), VoucherTag.CLOSE);
  assert.notDeepEqual(c.hash(), p.hash(), "close and payment vouchers of the same amount differ");
  const w = voucherCell({ kind: "payout", globalId: GLOBAL_ID, proxy: PROXY, worker: WORKER, cumulative: MAX_COINS });
  s = w.beginParse();
  assert.equal(s.loadUint(32), VoucherTag.PAYOUT);
  assert.equal(s.loadInt(32), GLOBAL_ID);
  assert.ok(s.loadAddress().equals(PROXY));
  assert.ok(s.loadAddress().equals(WORKER));
  assert.equal(s.loadCoins(), MAX_COINS);
  for (const v of [
    { kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 0n },
    { kind: "close", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 10n ** 18n },
    { kind: "payout", globalId: GLOBAL_ID, proxy: PROXY, worker: WORKER, cumulative: 7n },
  ] as Voucher[]) {
    const back = parseVoucherCell(voucherCell(v));
    assert.equal(back.kind, v.kind);
    assert.equal(back.globalId, GLOBAL_ID);
    assert.equal(back.cumulative, v.cumulative);
  }
  assert.throws(() => voucherCell({ kind: "payment", globalId: 2 ** 31, channel: CHANNEL, cumulative: 1n }), /int32/);
  assert.throws(() => voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: -1n }), /0\.\.2\^120-1/);
  assert.throws(() => voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: MAX_COINS + 1n }), /0\.\.2\^120-1/);
});

test("vouchers are bound to a network: the same voucher for another global id is another cell, refused off chain", () => {
  const signer = ed25519Signer(randomBytes(32));
  const devnet = signVoucher({ kind: "payment", globalId: -42, channel: CHANNEL, cumulative: 9n }, signer);
  const mainnet = voucherCell({ kind: "payment", globalId: -239, channel: CHANNEL, cumulative: 9n });
  assert.notDeepEqual(devnet.cell.hash(), mainnet.hash());
  assert.equal(verifyVoucherSignature(mainnet, devnet.signature, signer.publicKey), false, "a devnet signature is void for mainnet");
  assert.throws(() => verifySignedVoucher(devnet, { kind: "payment", publicKey: signer.publicKey, contract: CHANNEL, globalId: -239 }), /global id -42, expected -239/);
  assert.equal(verifySignedVoucher(devnet, { kind: "payment", publicKey: signer.publicKey, contract: CHANNEL, globalId: -42 }).globalId, -42);
});

test("signatures verify only with the right key and the unmodified voucher", () => {
  const signer = ed25519Signer(randomBytes(32));
  const other = ed25519Signer(randomBytes(32));
  const sv = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 1000n }, signer);
  assert.equal(verifyVoucherSignature(sv.cell, sv.signature, signer.publicKey), true);
  assert.equal(verifyVoucherSignature(sv.cell, sv.signature, other.publicKey), false);
  const modified = voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 1001n });
  assert.equal(verifyVoucherSignature(modified, sv.signature, signer.publicKey), false);
  assert.equal(verifyVoucherSignature(sv.cell, sv.signature.subarray(0, 63), signer.publicKey), false);
  assert.equal(verifyVoucherSignature(sv.cell, sv.signature, Buffer.alloc(32, 0xff)), false, "a non-point key is just invalid");
});

test("verifySignedVoucher names the failed check", () => {
  const signer = ed25519Signer(randomBytes(32));
  const pay = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 9n }, signer);
  const out = verifySignedVoucher(pay, { kind: "payment", publicKey: signer.publicKey, contract: CHANNEL, globalId: GLOBAL_ID });
  assert.equal(out.cumulative, 9n);
  assert.throws(() => verifySignedVoucher(pay, { kind: "close", publicKey: signer.publicKey, contract: CHANNEL, globalId: GLOBAL_ID }), /payment voucher, expected close/);
  assert.throws(() => verifySignedVoucher(pay, { kind: "payment", publicKey: signer.publicKey, contract: PROXY, globalId: GLOBAL_ID }), /expected/);
  assert.throws(() => verifySignedVoucher(pay, { kind: "payment", publicKey: ed25519Signer(randomBytes(32)).publicKey, contract: CHANNEL, globalId: GLOBAL_ID }), /signature/);
  const po = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: PROXY, worker: WORKER, cumulative: 9n }, signer);
  assert.throws(() => verifySignedVoucher(po, { kind: "payout", publicKey: signer.publicKey, contract: PROXY, worker: CHANNEL, globalId: GLOBAL_ID }), /names worker/);
  assert.equal(verifySignedVoucher(po, { kind: "payout", publicKey: signer.publicKey, contract: PROXY, worker: WORKER, globalId: GLOBAL_ID }).kind, "payout");
});

test("encode/decode round trip, and clear errors on malformed input", () => {
  const signer = ed25519Signer(randomBytes(32));
  const sv = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: PROXY, worker: WORKER, cumulative: 42n }, signer);
  const bytes = encodeSignedVoucher(sv);
  assert.ok(bytes.length < 200);
  const { signed, voucher } = decodeSignedVoucher(bytes);
  assert.deepEqual(signed.signature, sv.signature);
  assert.ok(signed.cell.equals(sv.cell));
  assert.equal(voucher.cumulative, 42n);
  assert.throws(() => decodeSignedVoucher(Buffer.from("hello")), /Invalid signed voucher: not a BoC/);
  assert.throws(() => decodeSignedVoucher(Buffer.alloc(5000)), /at most 1024/);
  assert.throws(() => decodeSignedVoucher(sv.cell.toBoc()), /512-bit signature and 1 ref/);
  const badTag = beginCell().storeBuffer(sv.signature).storeRef(beginCell().storeUint(0x12345678, 32).endCell()).endCell().toBoc();
  assert.throws(() => decodeSignedVoucher(badTag), /unknown voucher tag 0x12345678/);
  const extra = beginCell().storeBuffer(sv.signature).storeRef(beginCell().storeSlice(sv.cell.beginParse()).storeBit(1).endCell()).endCell().toBoc();
  assert.throws(() => decodeSignedVoucher(extra), /1 extra bits/);
  const withRef = beginCell().storeSlice(sv.cell.beginParse()).storeRef(Cell.EMPTY).endCell();
  assert.throws(() => parseVoucherCell(withRef), /no references/);
});

test("fuzz: decodeSignedVoucher never crashes on random bytes and refuses with an Error", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
    try {
      decodeSignedVoucher(bytes);
    } catch (e) {
      assert.ok(e instanceof Error && /^Invalid/.test(e.message), String(e));
    }
  }), { numRuns: 400 });
});

test("fuzz: parseVoucherCell on random cells, and random voucher fields round-trip", () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 127 }), fc.nat({ max: 7 }), (data, cut) => {
    const bits = Math.max(0, data.length * 8 - cut);
    const b = beginCell();
    for (let i = 0; i < bits; i++) b.storeBit((data[i >> 3] >> (7 - (i & 7))) & 1);
    try {
      parseVoucherCell(b.endCell());
    } catch (e) {
      assert.ok(e instanceof Error && e.message.startsWith("Invalid voucher cell"), String(e));
    }
  }), { numRuns: 400 });
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: MAX_COINS }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (amount, hash) => {
    const v = parseVoucherCell(voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: new Address(0, Buffer.from(hash)), cumulative: amount }));
    assert.equal(v.cumulative, amount);
    assert.equal(v.kind === "payment" && v.channel.hash.equals(Buffer.from(hash)), true);
  }), { numRuns: 200 });
});

test("encodeSignedVoucher writes exactly the BoC of @ton/core's generic serializer (every kind, random fields and cells)", () => {
  const generic = (sv: { cell: Cell; signature: Buffer }) => beginCell().storeBuffer(sv.signature).storeRef(sv.cell).endCell().toBoc();
  const hash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((h) => new Address(0, Buffer.from(h)));
  const voucher = fc.oneof(
    fc.record({ kind: fc.constantFrom("payment" as const, "close" as const), globalId: fc.integer({ min: -0x80000000, max: 0x7fffffff }), channel: hash, cumulative: fc.bigInt({ min: 0n, max: MAX_COINS }) }),
    fc.record({ kind: fc.constant("payout" as const), globalId: fc.integer({ min: -0x80000000, max: 0x7fffffff }), proxy: hash, worker: hash, cumulative: fc.bigInt({ min: 0n, max: MAX_COINS }) }),
  );
  fc.assert(fc.property(voucher, fc.uint8Array({ minLength: 64, maxLength: 64 }), (v, sig) => {
    const sv = { cell: voucherCell(v as Voucher), signature: Buffer.from(sig) };
    const bytes = encodeSignedVoucher(sv);
    assert.deepEqual(bytes, generic(sv));
    assert.equal(decodeSignedVoucher(bytes).voucher.cumulative, v.cumulative);
  }), { numRuns: 300 });
  // Any ref-less cell, of every bit length (byte-aligned or not, empty, full), not only voucher layouts.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 128 }), fc.nat({ max: 7 }), fc.uint8Array({ minLength: 64, maxLength: 64 }), (data, cut, sig) => {
    const bits = Math.min(1023, Math.max(0, data.length * 8 - cut));
    const b = beginCell();
    for (let i = 0; i < bits; i++) b.storeBit((data[i >> 3] >> (7 - (i & 7))) & 1);
    const sv = { cell: b.endCell(), signature: Buffer.from(sig) };
    assert.deepEqual(encodeSignedVoucher(sv), generic(sv));
  }), { numRuns: 300 });
});

test("fuzz: flipping any bit of an encoded signed voucher never yields another valid voucher", () => {
  const signer = ed25519Signer(randomBytes(32));
  const sv = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: CHANNEL, cumulative: 777n }, signer);
  const bytes = encodeSignedVoucher(sv);
  fc.assert(fc.property(fc.nat({ max: bytes.length * 8 - 1 }), (bit) => {
    const m = Buffer.from(bytes);
    m[bit >> 3] ^= 1 << (7 - (bit & 7));
    let verified: { cell: Cell } | null = null;
    try {
      const { signed } = decodeSignedVoucher(m);
      verifySignedVoucher(signed, { kind: "payment", publicKey: signer.publicKey, contract: CHANNEL, globalId: GLOBAL_ID });
      verified = signed;
    } catch (e) {
      assert.ok(e instanceof Error);
    }
    // a flip in BoC framing may still decode to the very same voucher; anything else must be refused
    if (verified) assert.ok(verified.cell.equals(sv.cell), `bit ${bit} flip produced a different voucher that verifies`);
  }), { numRuns: 300 });
});

test("fuzz: decodeSignedVoucher on well-formed BoCs of random cells refuses with an Error", () => {
  const cellArb = fc.record({
    rootBits: fc.uint8Array({ maxLength: 127 }),
    refs: fc.array(fc.uint8Array({ maxLength: 127 }), { maxLength: 3 }),
  });
  fc.assert(fc.property(cellArb, ({ rootBits, refs }) => {
    const b = beginCell().storeBuffer(Buffer.from(rootBits));
    for (const r of refs) b.storeRef(beginCell().storeBuffer(Buffer.from(r)).endCell());
    try {
      decodeSignedVoucher(b.endCell().toBoc());
    } catch (e) {
      assert.ok(e instanceof Error && /^Invalid/.test(e.message), String(e));
    }
  }), { numRuns: 400 });
});

test("a voucher signed off-chain and sent as bytes is accepted on chain; a modified one is refused", async () => {
  const w = await makeWorld({ deposit: 5n * TON });
  const wire = encodeSignedVoucher(signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: 2n * TON }, w.clientKey));
  const { signed } = decodeSignedVoucher(wire);
  verifySignedVoucher(signed, { kind: "payment", publicKey: w.clientKey.publicKey, contract: w.channel.address, globalId: GLOBAL_ID });
  // modified in transit: amount raised, signature kept
  const tampered = { cell: voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: 3n * TON }), signature: signed.signature };
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), tampered), w.channel.address, ContractError.BAD_SIGNATURE);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), signed), w.channel.address);
  assert.equal((await w.channel.getState()).redeemed, 2n * TON);
});
