// Root contract (parameters, model prices, image allow-lists, proxies, version), in @ton/sandbox through
// the RootContract wrapper only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { beginCell } from "@ton/core";
import { Blockchain } from "@ton/sandbox";
import { expectOk, expectExit, valueBounced, TON, T0 } from "./contracts-helpers.js";
import { ContractError } from "../../src/chain/contracts/errors.js";
import { RootContract, ImageKind, type RootParams } from "../../src/chain/contracts/RootContract.js";

const PARAMS: RootParams = {
  proxyFeeBps: 500, clientCloseDelay: 3600, proxyUnstakeDelay: 86400, minProxyStake: 100n * TON, minClientDeposit: 1n * TON,
};
const sha = (s: string) => createHash("sha256").update(s).digest();

async function setup() {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const owner = await bc.treasury("owner");
  const stranger = await bc.treasury("stranger");
  const root = bc.openContract(RootContract.createFromConfig({ owner: owner.address, params: PARAMS }));
  expectOk(await root.sendDeploy(owner.getSender(), 1n * TON), root.address);
  return { bc, owner, stranger, root };
}

test("deploy: owner, version 0, parameters, empty lists", async () => {
  const { owner, root } = await setup();
  const info = await root.getInfo();
  assert.ok(info.owner.equals(owner.address));
  assert.equal(info.version, 0);
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
  const proxyAddr = stranger.address;
  const info = { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint: "203.0.113.5:11002" };
  expectOk(await root.sendSetModel(o, model, { promptPrice: 20n, completionPrice: 60n }), root.address);
  expectOk(await root.sendSetImage(o, ImageKind.WORKER, workerImg, true), root.address);
  expectOk(await root.sendSetImage(o, ImageKind.PROXY, proxyImg, true), root.address);
  expectOk(await root.sendRegisterProxy(o, proxyAddr, info), root.address);
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
  expectOk(await root.sendRegisterProxy(owner.getSender(), stranger.address, info), root.address);
  assert.equal((await root.getProxyInfo(stranger.address))?.endpoint, endpoint);
});

test("non-owners cannot change anything; failed updates do not bump the version", async () => {
  const { owner, stranger, root } = await setup();
  const s = stranger.getSender();
  expectExit(await root.sendSetParams(s, PARAMS), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendSetModel(s, randomBytes(32), { promptPrice: 1n, completionPrice: 1n }), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendSetImage(s, ImageKind.WORKER, randomBytes(32), true), root.address, ContractError.WRONG_SENDER);
  expectExit(await root.sendRegisterProxy(s, s.address!, { signingKey: randomBytes(32), identityKey: randomBytes(32), endpoint: "x" }), root.address, ContractError.WRONG_SENDER);
  const r = await root.sendTransferOwnership(s, stranger.address);
  expectExit(r, root.address, ContractError.WRONG_SENDER);
  assert.ok(valueBounced(r, root.address, stranger.address) > 0n, "the refused message bounces its value back");
  assert.equal((await root.getInfo()).version, 0);
  assert.ok((await root.getInfo()).owner.equals(owner.address));
});

test("ownership transfer hands over control", async () => {
  const { owner, stranger, root } = await setup();
  expectOk(await root.sendTransferOwnership(owner.getSender(), stranger.address), root.address);
  assert.ok((await root.getInfo()).owner.equals(stranger.address));
  expectExit(await root.sendSetParams(owner.getSender(), PARAMS), root.address, ContractError.WRONG_SENDER);
  expectOk(await root.sendSetParams(stranger.getSender(), PARAMS), root.address);
});

test("bad input: fee above 100 %, unknown image kind, removing what is absent, unknown opcode", async () => {
  const { bc, owner, root } = await setup();
  const o = owner.getSender();
  // the wrapper refuses to build a bad fee, so send a raw body
  const badParams = beginCell().storeUint(10_001, 16).storeUint(1, 32).storeUint(1, 32).storeCoins(1n).storeCoins(1n).endCell();
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
  // the update's 0.05 TON stays on the root; a year of storage costs far less
  const spent = before + 50_000_000n - after;
  assert.ok(spent > 0n && spent < 20_000_000n, `storage + gas over a year: ${spent}`);
  assert.equal((await root.getInfo()).version, 6);
});
