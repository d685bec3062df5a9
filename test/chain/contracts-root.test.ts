// Root contract (parameters, model prices, image allow-lists, proxies, version), in @ton/sandbox through
// the RootContract wrapper only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { beginCell, type Address } from "@ton/core";
import { Blockchain } from "@ton/sandbox";
import { expectOk, expectExit, valueBounced, TON, T0, GLOBAL_ID } from "./contracts-helpers.js";
import { ContractError } from "../../src/chain/contracts/errors.js";
import { RootContract, ImageKind, ROOT_BOUNDS, rootParamsToCell, type RootParams } from "../../src/chain/contracts/RootContract.js";
import { Op } from "../../src/chain/contracts/opcodes.js";
import { contractCode } from "../../src/chain/compile.js";

const PARAMS: RootParams = {
  proxyFeeBps: 500, clientCloseDelay: 3600, proxyUnstakeDelay: 86400, minProxyStake: 100n * TON, minClientDeposit: 1n * TON,
};
const sha = (s: string) => createHash("sha256").update(s).digest();

async function setup() {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const owner = await bc.treasury("owner");
  const stranger = await bc.treasury("stranger");
  const root = bc.openContract(RootContract.createFromConfig({ owner: owner.address, params: PARAMS, globalId: GLOBAL_ID }));
  expectOk(await root.sendDeploy(owner.getSender(), 1n * TON), root.address);
  return { bc, owner, stranger, root };
}

/** A proxy config the root accepts (its minimums), for `operator`. */
const reg = (operator: Address) => ({ owner: operator, minStake: PARAMS.minProxyStake, unstakeDelay: PARAMS.proxyUnstakeDelay });
/** The address the root registers `reg(operator)` under, with this signing key. */
const regAddress = (root: Address, operator: Address, signingKey: Buffer) => RootContract.proxyAddress(root, GLOBAL_ID, reg(operator), signingKey);
/** SetParams with a raw (unchecked) parameter cell: the wrapper refuses out-of-range values itself. */
const rawSetParams = (p: RootParams) => beginCell().storeUint(Op.SetParams, 32).storeUint(0, 64).storeRef(rootParamsToCell(p)).endCell();

test("deploy: owner, version 0, parameters, empty lists", async () => {
  const { owner, root } = await setup();
  const info = await root.getInfo();
  assert.ok(info.owner.equals(owner.address));
  assert.equal(info.version, 0);
  assert.equal(info.pendingOwner, null);
  assert.equal(info.globalId, GLOBAL_ID);
  assert.deepEqual(await root.getProxyCodeHash(), contractCode("proxy").hash());
  assert.deepEqual(await root.getParams(), PARAMS);
  const snap = await root.getSnapshot();
  assert.equal(snap.models.size + snap.workerImages.size + snap.proxyImages.size + snap.proxies.size, 0);
});

test("owner updates each bump the version and are readable through every getter", async () => {
  const { owner, stranger, root } = await setup();
  const o = owner.getSender();
  const model = sha("Qwen/Qwen3-0.6B@abc:verity");
  const workerImg = randomBytes(32);
  const proxyImg = randomBytes(32);
  const info = { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint: "203.0.113.5:11002" };
  const proxyAddr = regAddress(root.address, stranger.address, info.signingKey);
  expectOk(await root.sendSetModel(o, model, { promptPrice: 20n, completionPrice: 60n }), root.address);
  expectOk(await root.sendSetImage(o, ImageKind.WORKER, workerImg, true), root.address);
  expectOk(await root.sendSetImage(o, ImageKind.PROXY, proxyImg, true), root.address);
  expectOk(await root.sendRegisterProxy(o, reg(stranger.address), info), root.address);
  const newParams = { ...PARAMS, proxyFeeBps: 1000, minProxyStake: 50n * TON };
  expectOk(await root.sendSetParams(o, newParams), root.address);
  assert.equal((await root.getInfo()).version, 5);
  assert.deepEqual(await root.getParams(), newParams);
  assert.deepEqual(await root.getModelPrice(model), { promptPrice: 20n, completionPrice: 60n });
  assert.equal(await root.getModelPrice(sha("other")), null);
  assert.equal(await root.getImageAllowed(ImageKind.WORKER, workerImg), true);
  assert.equal(await root.getImageAllowed(ImageKind.PROXY, workerImg), false, "lists are separate");
  assert.equal(await root.getImageAllowed(ImageKind.PROXY, proxyImg), true);
  assert.deepEqual(await root.getProxyInfo(proxyAddr), info);
  assert.equal(await root.getProxyInfo(owner.address), null);
  const snap = await root.getSnapshot();
  assert.equal(snap.version, 5);
  assert.deepEqual(snap.models.get(model.toString("hex")), { promptPrice: 20n, completionPrice: 60n });
  assert.ok(snap.workerImages.has(workerImg.toString("hex")));
  assert.ok(snap.proxyImages.has(proxyImg.toString("hex")));
  const p = snap.proxies.get(proxyAddr.toRawString());
  assert.ok(p && p.address.equals(proxyAddr));
  assert.equal(p.endpoint, info.endpoint);
  // updates and removals
  expectOk(await root.sendSetModel(o, model, { promptPrice: 25n, completionPrice: 75n }), root.address);
  assert.deepEqual(await root.getModelPrice(model), { promptPrice: 25n, completionPrice: 75n });
  expectOk(await root.sendRemoveModel(o, model), root.address);
  expectOk(await root.sendSetImage(o, ImageKind.WORKER, workerImg, false), root.address);
  expectOk(await root.sendRemoveProxy(o, proxyAddr), root.address);
  assert.equal(await root.getModelPrice(model), null);
  assert.equal(await root.getImageAllowed(ImageKind.WORKER, workerImg), false);
  assert.equal(await root.getProxyInfo(proxyAddr), null);
  assert.equal((await root.getInfo()).version, 9);
});

test("long endpoints (several cells) survive the round trip", async () => {
  const { owner, stranger, root } = await setup();
  const endpoint = "https://" + "proxy-".repeat(60) + ".example:11002";
  const info = { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint };
  expectOk(await root.sendRegisterProxy(owner.getSender(), reg(stranger.address), info), root.address);
  assert.equal((await root.getProxyInfo(regAddress(root.address, stranger.address, info.signingKey)))?.endpoint, endpoint);
});

test("non-owners cannot change anything; failed updates do not bump the version", async () => {
  const { owner, stranger, root } = await setup();
  const s = stranger.getSender();
  expectExit(await root.sendSetParams(s, PARAMS), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendSetModel(s, randomBytes(32), { promptPrice: 1n, completionPrice: 1n }), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendSetImage(s, ImageKind.WORKER, randomBytes(32), true), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendRegisterProxy(s, reg(s.address!), { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint: "x" }), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendAcceptOwnership(s), root.address, ContractError.WRONG_SENDER);
  const r = await root.sendTransferOwnership(s, stranger.address);
  expectExit(r, root.address, ContractError.WRONG_SENDER);
  assert.ok(valueBounced(r, root.address, stranger.address) > 0n, "the refused message bounces its value back");
  assert.equal((await root.getInfo()).version, 0);
  assert.ok((await root.getInfo()).owner.equals(owner.address));
});

test("ownership moves in two steps: the owner proposes, the new owner accepts from its own wallet", async () => {
  const { bc, owner, stranger, root } = await setup();
  const typo = await bc.treasury("nobody's wallet");
  // a proposal alone changes nothing: a mistyped address cannot lock the owner out
  expectOk(await root.sendTransferOwnership(owner.getSender(), typo.address), root.address);
  let info = await root.getInfo();
  assert.ok(info.owner.equals(owner.address));
  assert.ok(info.pendingOwner?.equals(typo.address));
  expectOk(await root.sendSetParams(owner.getSender(), PARAMS), root.address);
  // the owner re-proposes; only the proposed wallet can accept
  expectOk(await root.sendTransferOwnership(owner.getSender(), stranger.address), root.address);
  expectExit(await root.sendAcceptOwnership(typo.getSender()), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendAcceptOwnership(owner.getSender()), root.address, ContractError.WRONG_SENDER);
  expectOk(await root.sendAcceptOwnership(stranger.getSender()), root.address);
  info = await root.getInfo();
  assert.ok(info.owner.equals(stranger.address));
  assert.equal(info.pendingOwner, null);
  expectExit(await root.sendSetParams(owner.getSender(), PARAMS), root.address, ContractError.WRONG_SENDER);
  expectOk(await root.sendSetParams(stranger.getSender(), PARAMS), root.address);
  expectExit(await root.sendAcceptOwnership(stranger.getSender()), root.address, ContractError.WRONG_SENDER);
  // proposing the owner itself cancels a pending proposal
  expectOk(await root.sendTransferOwnership(stranger.getSender(), typo.address), root.address);
  expectOk(await root.sendTransferOwnership(stranger.getSender(), stranger.address), root.address);
  assert.equal((await root.getInfo()).pendingOwner, null);
  expectExit(await root.sendAcceptOwnership(typo.getSender()), root.address, ContractError.WRONG_SENDER);
});

test("parameters are bounded: every delay within its named bounds, the fee at most 100 %", async () => {
  const { owner, root } = await setup();
  const send = (p: RootParams) => owner.send({ to: root.address, value: TON / 10n, body: rawSetParams(p) });
  const b = ROOT_BOUNDS;
  for (const bad of [
    { ...PARAMS, proxyUnstakeDelay: 0xffffffff }, // would make start-unstake overflow its uint32 time forever
    { ...PARAMS, proxyUnstakeDelay: b.maxProxyUnstakeDelay + 1 },
    { ...PARAMS, proxyUnstakeDelay: b.minProxyUnstakeDelay - 1 },
    { ...PARAMS, clientCloseDelay: b.maxClientCloseDelay + 1 },
    { ...PARAMS, clientCloseDelay: 0 },
    { ...PARAMS, proxyFeeBps: 10_001 },
  ]) {
    expectExit(await send(bad), root.address, ContractError.BAD_PARAMS);
    await assert.rejects(async () => root.sendSetParams(owner.getSender(), bad), /must be/, "the wrapper refuses it too");
  }
  expectOk(await send({ ...PARAMS, proxyUnstakeDelay: b.maxProxyUnstakeDelay, clientCloseDelay: b.maxClientCloseDelay }), root.address);
  expectOk(await send({ ...PARAMS, proxyUnstakeDelay: b.minProxyUnstakeDelay, clientCloseDelay: b.minClientCloseDelay }), root.address);
  assert.equal((await root.getInfo()).version, 2);
});

test("RegisterProxy: the root computes the genuine proxy address; configs below its parameters are refused", async () => {
  const { owner, stranger, root } = await setup();
  const o = owner.getSender();
  const info = { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint: "203.0.113.5:11002" };
  expectExit(await root.sendRegisterProxy(o, { ...reg(stranger.address), minStake: PARAMS.minProxyStake - 1n }, info), root.address, ContractError.BAD_CONFIG);
  expectExit(await root.sendRegisterProxy(o, { ...reg(stranger.address), unstakeDelay: PARAMS.proxyUnstakeDelay - 1 }, info), root.address, ContractError.BAD_CONFIG);
  expectExit(await root.sendRegisterProxy(o, { ...reg(stranger.address), unstakeDelay: ROOT_BOUNDS.maxProxyUnstakeDelay + 1 }, info), root.address, ContractError.BAD_CONFIG);
  const bigger = { ...reg(stranger.address), minStake: PARAMS.minProxyStake * 2n, unstakeDelay: PARAMS.proxyUnstakeDelay * 2 };
  expectOk(await root.sendRegisterProxy(o, bigger, info), root.address);
  const snap = await root.getSnapshot();
  assert.equal(snap.proxies.size, 1);
  const [registered] = [...snap.proxies.values()];
  assert.ok(registered!.address.equals(RootContract.proxyAddress(root.address, GLOBAL_ID, bigger, info.signingKey)));
  assert.deepEqual(registered!.signingKey, info.signingKey);
});

test("bad input: fee above 100 %, unknown image kind, removing what is absent, unknown opcode", async () => {
  const { bc, owner, root } = await setup();
  const o = owner.getSender();
  // the wrapper refuses to build a bad fee, so send a raw body
  const badParams = beginCell().storeUint(10_001, 16).storeUint(3600, 32).storeUint(3600, 32).storeCoins(1n).storeCoins(1n).endCell();
  const body = beginCell().storeUint(0x52540001, 32).storeUint(0, 64).storeRef(badParams).endCell();
  expectExit(await owner.send({ to: root.address, value: TON / 10n, body }), root.address, ContractError.BAD_PARAMS);
  await assert.rejects(async () => root.sendSetParams(o, { ...PARAMS, proxyFeeBps: 10_001 }), /proxyFeeBps/);
  expectExit(await root.sendSetImage(o, 3 as 1, randomBytes(32), true), root.address, ContractError.BAD_IMAGE_KIND);
  expectExit(await root.sendRemoveModel(o, randomBytes(32)), root.address, ContractError.NOT_FOUND);
  expectExit(await root.sendRemoveProxy(o, owner.address), root.address, ContractError.NOT_FOUND);
  expectExit(await root.sendSetImage(o, ImageKind.PROXY, randomBytes(32), false), root.address, ContractError.NOT_FOUND);
  expectExit(await owner.send({ to: root.address, value: TON / 10n, body: beginCell().storeUint(0x1234, 32).endCell() }), root.address, ContractError.UNKNOWN_OP);
  assert.equal((await root.getInfo()).version, 0);
  void bc;
});

test("storage fees over a year idle: the root still accepts updates", async () => {
  const { bc, owner, root } = await setup();
  for (let i = 0; i < 5; i++) expectOk(await root.sendSetImage(owner.getSender(), ImageKind.WORKER, randomBytes(32), true), root.address);
  const before = (await bc.getContract(root.address)).balance;
  bc.now = T0 + 365 * 24 * 3600;
  expectOk(await root.sendSetModel(owner.getSender(), randomBytes(32), { promptPrice: 1n, completionPrice: 2n }), root.address);
  const after = (await bc.getContract(root.address)).balance;
  // the update's 0.05 TON stays on the root; a year of storage (the root also holds the proxy code it registers
  // proxies by, ~1 KB) costs less
  const spent = before + 50_000_000n - after;
  assert.ok(spent > 0n && spent < 40_000_000n, `storage + gas over a year: ${spent}`);
  assert.equal((await root.getInfo()).version, 6);
});
