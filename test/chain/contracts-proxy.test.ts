// Proxy contract (stake, income from channels, worker payouts, fee withdrawal, unstake), in @ton/sandbox
// through the ProxyContract wrapper only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { toNano } from "@ton/core";
import {
  makeWorld, expectOk, expectExit, valueSent, valueBounced, TON, T0, MIN_STAKE, UNSTAKE_DELAY, type World,
  GLOBAL_ID,
} from "./contracts-helpers.js";
import { ed25519Signer, signVoucher, voucherCell } from "../../src/chain/vouchers.js";
import { ContractError } from "../../src/chain/contracts/errors.js";
import { ProxyContract, ADD_STAKE_GAS_RESERVE } from "../../src/chain/contracts/ProxyContract.js";
import { STORAGE_RESERVE } from "../../src/chain/contracts/opcodes.js";

const payout = (w: World, cumulative: bigint, worker = w.worker.address) =>
  signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: w.proxy.address, worker, cumulative }, w.proxyKey);

/** World whose proxy contract earned `income` from a client channel redeem. */
async function earning(income: bigint): Promise<World> {
  const w = await makeWorld({ deposit: income + 1n * TON });
  const v = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: income }, w.clientKey);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), v), w.proxy.address);
  return w;
}

test("deploy stakes, config and state getters", async () => {
  const w = await makeWorld({ stake: 12n * TON });
  const cfg = await w.proxy.getConfig();
  assert.ok(cfg.owner.equals(w.operator.address));
  assert.ok(cfg.root.equals(w.root.address));
  assert.equal(cfg.globalId, GLOBAL_ID);
  assert.ok(w.proxy.address.equals(ProxyContract.expectedAddress(cfg)), "the getters' config rebuilds the address");
  assert.deepEqual(cfg.signingKey, w.proxyKey.publicKey);
  assert.equal(cfg.minStake, MIN_STAKE);
  assert.equal(cfg.unstakeDelay, UNSTAKE_DELAY);
  const st = await w.proxy.getState();
  assert.equal(st.stake, 12n * TON);
  assert.equal(st.active, true);
  assert.equal(st.keyApproved, false);
  assert.equal(st.unstakeAt, 0);
  assert.equal(st.freeBalance, 0n, "deployment gas came out of the stake's value, nothing is free");
  assert.equal(await w.proxy.getPaidTo(w.worker.address), 0n);
});

test("a stake below the minimum leaves the proxy inactive until topped up", async () => {
  const w = await makeWorld({ stake: 1n * TON });
  assert.equal((await w.proxy.getState()).active, false);
  expectOk(await w.proxy.sendAddStake(w.operator.getSender(), 9n * TON + ADD_STAKE_GAS_RESERVE), w.proxy.address);
  const st = await w.proxy.getState();
  assert.equal(st.stake, 10n * TON);
  assert.equal(st.active, true);
});

test("AddStake: owner only, credits the value minus its gas reserve (nobody can lock workers' money as stake)", async () => {
  const w = await earning(2n * TON);
  const before = await w.proxy.getState();
  // attack (before the fix): anyone sends tiny AddStakes; each credits the whole value to the stake while its gas
  // comes out of the free balance, so money owed to workers turns into locked stake at about 1:1 cost
  const r = await w.proxy.sendAddStake(w.stranger.getSender(), toNano("0.002"));
  expectExit(r, w.proxy.address, ContractError.WRONG_SENDER);
  let st = await w.proxy.getState();
  assert.equal(st.stake, before.stake);
  assert.ok(st.freeBalance >= before.freeBalance - toNano("0.0001"), "a refused AddStake's gas is the sender's (it bounces)");
  // the owner too: a value at or below the reserve is refused, a bigger one credits value - reserve, never more
  expectExit(await w.proxy.sendAddStake(w.operator.getSender(), ADD_STAKE_GAS_RESERVE), w.proxy.address, ContractError.VALUE_TOO_LOW);
  const ok = await w.proxy.sendAddStake(w.operator.getSender(), 1n * TON);
  expectOk(ok, w.proxy.address);
  st = await w.proxy.getState();
  assert.equal(st.stake, before.stake + 1n * TON - ADD_STAKE_GAS_RESERVE);
  assert.ok(st.freeBalance >= before.freeBalance, `the free balance did not pay for the stake: ${before.freeBalance} -> ${st.freeBalance}`);
});

test("redeemed client money and plain transfers are income above the stake", async () => {
  const w = await earning(3n * TON);
  const st = await w.proxy.getState();
  assert.ok(st.totalReceived > 3n * TON);
  assert.ok(st.freeBalance > 3n * TON - STORAGE_RESERVE - toNano("0.01"), `free ${st.freeBalance}`);
  expectOk(await w.stranger.send({ to: w.proxy.address, value: 1n * TON }), w.proxy.address);
  assert.equal((await w.proxy.getState()).totalReceived, st.totalReceived + 1n * TON);
});

test("workers claim proxy-signed cumulative payouts; each pays only the difference", async () => {
  const w = await earning(5n * TON);
  const worker2 = await w.bc.treasury("worker2");
  let r = await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 1n * TON));
  expectOk(r, w.proxy.address);
  const got = valueSent(r, w.proxy.address, w.worker.address);
  assert.ok(got > 1n * TON && got < 1n * TON + toNano("0.05"), `worker gets 1 TON plus unused gas: ${got}`);
  const before = await w.proxy.getState();
  r = await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 3n * TON));
  expectOk(r, w.proxy.address);
  const after = await w.proxy.getState();
  assert.equal(before.balance - after.balance, 2n * TON, "second voucher pays 3 - 1 TON, gas is the worker's");
  assert.equal(await w.proxy.getPaidTo(w.worker.address), 3n * TON);
  // another worker has its own running total
  expectOk(await w.proxy.sendClaimPayout(worker2.getSender(), payout(w, 1n * TON, worker2.address)), w.proxy.address);
  assert.equal(await w.proxy.getPaidTo(worker2.address), 1n * TON);
  assert.equal((await w.proxy.getState()).totalPaidOut, 4n * TON);
  assert.equal((await w.proxy.getState()).stake, MIN_STAKE, "the stake is untouched");
});

test("replayed, older, forged, foreign and misdirected payout vouchers are refused", async () => {
  const w = await earning(5n * TON);
  const v2 = payout(w, 2n * TON);
  expectOk(await w.proxy.sendClaimPayout(w.worker.getSender(), v2), w.proxy.address);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), v2), w.proxy.address, ContractError.STALE_VOUCHER);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 1n * TON)), w.proxy.address, ContractError.STALE_VOUCHER);
  const mallory = ed25519Signer(randomBytes(32));
  const forged = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: w.proxy.address, worker: w.worker.address, cumulative: 4n * TON }, mallory);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), forged), w.proxy.address, ContractError.BAD_SIGNATURE);
  const raised = { cell: voucherCell({ kind: "payout", globalId: GLOBAL_ID, proxy: w.proxy.address, worker: w.worker.address, cumulative: 4n * TON }), signature: v2.signature };
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), raised), w.proxy.address, ContractError.BAD_SIGNATURE);
  // signed by the right key but for another proxy contract
  const otherProxy = ProxyContract.createFromConfig({ owner: w.operator.address, root: w.stranger.address, signingKey: w.proxyKey.publicKey, minStake: 1n, unstakeDelay: 1, globalId: GLOBAL_ID });
  const foreign = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: otherProxy.address, worker: w.worker.address, cumulative: 4n * TON }, w.proxyKey);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), foreign), w.proxy.address, ContractError.WRONG_CONTRACT);
  // a stranger cannot claim a worker's voucher (nor redirect it)
  expectExit(await w.proxy.sendClaimPayout(w.stranger.getSender(), payout(w, 4n * TON)), w.proxy.address, ContractError.WRONG_WORKER);
  // the same voucher for another network (e.g. signed on the devnet, replayed on mainnet) is refused
  const otherNet = signVoucher({ kind: "payout", globalId: -42, proxy: w.proxy.address, worker: w.worker.address, cumulative: 4n * TON }, w.proxyKey);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), otherNet), w.proxy.address, ContractError.WRONG_NETWORK);
  // a client payment voucher signed with the proxy key is of the wrong kind
  const wrongKind = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.proxy.address, cumulative: 4n * TON }, w.proxyKey);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), wrongKind), w.proxy.address, ContractError.WRONG_VOUCHER_TAG);
  assert.equal(await w.proxy.getPaidTo(w.worker.address), 2n * TON);
});

test("overdraw: payouts never eat into the stake while the proxy is active", async () => {
  const w = await earning(2n * TON);
  const st = await w.proxy.getState();
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, st.freeBalance + 1n)), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  expectOk(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, st.freeBalance)), w.proxy.address);
  const after = await w.proxy.getState();
  assert.equal(after.freeBalance, 0n);
  assert.equal(after.stake, MIN_STAKE);
  assert.equal(after.balance, MIN_STAKE + STORAGE_RESERVE);
});

test("fee withdrawal: owner only, only from the balance above the stake", async () => {
  const w = await earning(4n * TON);
  expectExit(await w.proxy.sendWithdrawFee(w.stranger.getSender(), 1n * TON), w.proxy.address, ContractError.WRONG_SENDER);
  const st = await w.proxy.getState();
  expectExit(await w.proxy.sendWithdrawFee(w.operator.getSender(), st.freeBalance + 1n), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  const r = await w.proxy.sendWithdrawFee(w.operator.getSender(), 1n * TON);
  expectOk(r, w.proxy.address);
  const got = valueSent(r, w.proxy.address, w.operator.address);
  assert.ok(got > 1n * TON && got < 1n * TON + toNano("0.05"));
  const after = await w.proxy.getState();
  assert.equal(st.balance - after.balance, 1n * TON);
  assert.equal(after.totalWithdrawn, 1n * TON);
  assert.equal(after.stake, MIN_STAKE);
});

test("unstake with a root-approved key: during the delay the stake backs payouts and the owner cannot withdraw; afterwards the rest goes to the owner", async () => {
  const w = await earning(1n * TON);
  expectExit(await w.proxy.sendApproveKey(w.stranger.getSender()), w.proxy.address, ContractError.WRONG_SENDER);
  expectExit(await w.proxy.sendApproveKey(w.operator.getSender()), w.proxy.address, ContractError.WRONG_SENDER);
  expectOk(await w.proxy.sendApproveKey(w.root.getSender()), w.proxy.address);
  assert.equal((await w.proxy.getState()).keyApproved, true);
  expectExit(await w.proxy.sendFinishUnstake(w.operator.getSender()), w.proxy.address, ContractError.UNSTAKE_NOT_REQUESTED);
  expectExit(await w.proxy.sendStartUnstake(w.stranger.getSender()), w.proxy.address, ContractError.WRONG_SENDER);
  w.bc.now = T0 + 10;
  expectOk(await w.proxy.sendStartUnstake(w.operator.getSender()), w.proxy.address);
  let st = await w.proxy.getState();
  assert.equal(st.unstakeAt, T0 + 10 + UNSTAKE_DELAY);
  assert.equal(st.active, false);
  expectExit(await w.proxy.sendStartUnstake(w.operator.getSender()), w.proxy.address, ContractError.UNSTAKING);
  expectExit(await w.proxy.sendWithdrawFee(w.operator.getSender(), 1n), w.proxy.address, ContractError.UNSTAKING);
  const addStake = await w.proxy.sendAddStake(w.operator.getSender(), 1n * TON);
  expectExit(addStake, w.proxy.address, ContractError.UNSTAKING);
  assert.ok(valueBounced(addStake, w.proxy.address, w.operator.address) > 0n);
  // a worker holding a 5 TON voucher is paid although only ~1 TON is above the stake
  expectOk(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 5n * TON)), w.proxy.address);
  st = await w.proxy.getState();
  assert.ok(st.stake < MIN_STAKE && st.stake > MIN_STAKE - 5n * TON, `stake shrank by what exceeded the free balance: ${st.stake}`);
  assert.equal(st.balance, st.stake + STORAGE_RESERVE);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 5n * TON + st.stake + 1n)), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  w.bc.now = T0 + 10 + UNSTAKE_DELAY - 1;
  expectExit(await w.proxy.sendFinishUnstake(w.operator.getSender()), w.proxy.address, ContractError.UNSTAKE_TOO_EARLY);
  w.bc.now = T0 + 10 + UNSTAKE_DELAY;
  expectExit(await w.proxy.sendFinishUnstake(w.stranger.getSender()), w.proxy.address, ContractError.WRONG_SENDER);
  const r = await w.proxy.sendFinishUnstake(w.operator.getSender());
  expectOk(r, w.proxy.address);
  assert.ok(valueSent(r, w.proxy.address, w.operator.address) > st.stake);
  st = await w.proxy.getState();
  assert.equal(st.stake, 0n);
  assert.equal(st.unstakeAt, 0);
  assert.ok(st.balance <= STORAGE_RESERVE);
  // the proxy may stake again later
  expectOk(await w.proxy.sendAddStake(w.operator.getSender(), MIN_STAKE + 1n * TON), w.proxy.address);
  assert.equal((await w.proxy.getState()).active, true);
});

test("attack: the operator cannot drain the stake right after StartUnstake with its own payout key", async () => {
  // The payout key is the operator's own (as the devnet and CLI set it) and the root never approved it.
  const w = await earning(1n * TON);
  const accomplice = await w.bc.treasury("operator's other wallet");
  const before = await w.proxy.getState();
  assert.ok(before.balance > MIN_STAKE + 1n * TON - toNano("0.05"), `stake + income: ${before.balance}`);
  expectOk(await w.proxy.sendStartUnstake(w.operator.getSender()), w.proxy.address);
  const unstaking = await w.proxy.getState();
  // T0: a voucher for the whole balance, signed with the payout key, to an address the operator controls
  const drain = payout(w, unstaking.balance - STORAGE_RESERVE, accomplice.address);
  expectExit(await w.proxy.sendClaimPayout(accomplice.getSender(), drain), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  // nor any part of the stake: only the free balance is payable
  expectExit(await w.proxy.sendClaimPayout(accomplice.getSender(), payout(w, unstaking.freeBalance + 1n, accomplice.address)), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  // an honest worker's 0.5 TON claim at the same moment is paid (from the free balance)
  expectOk(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, TON / 2n)), w.proxy.address);
  let st = await w.proxy.getState();
  assert.equal(st.stake, MIN_STAKE, "the stake is untouched");
  // the same holds until the very end of the delay: the stake never pays a voucher of an unapproved key
  w.bc.now = T0 + UNSTAKE_DELAY;
  expectExit(await w.proxy.sendClaimPayout(accomplice.getSender(), payout(w, st.freeBalance + 1n, accomplice.address)), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  st = await w.proxy.getState();
  assert.equal(st.stake, MIN_STAKE);
  // the stake goes back to the operator only after the delay, as always
  expectOk(await w.proxy.sendFinishUnstake(w.operator.getSender()), w.proxy.address);
  assert.equal((await w.proxy.getState()).stake, 0n);
});

test("only the proxy's root may approve its payout key (a stranger's approval changes nothing)", async () => {
  const w = await earning(1n * TON);
  expectExit(await w.proxy.sendApproveKey(w.operator.getSender()), w.proxy.address, ContractError.WRONG_SENDER);
  expectOk(await w.proxy.sendStartUnstake(w.operator.getSender()), w.proxy.address);
  expectExit(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 5n * TON)), w.proxy.address, ContractError.INSUFFICIENT_FUNDS);
  assert.equal((await w.proxy.getState()).keyApproved, false);
});

test("storage fees over a year idle: the proxy still pays out and the stake is intact", async () => {
  const w = await earning(2n * TON);
  const before = await w.proxy.getState();
  w.bc.now = T0 + 365 * 24 * 3600;
  expectOk(await w.proxy.sendClaimPayout(w.worker.getSender(), payout(w, 1n * TON)), w.proxy.address);
  const after = await w.proxy.getState();
  const storageFee = before.balance - after.balance - 1n * TON;
  assert.ok(storageFee > 0n && storageFee < STORAGE_RESERVE, `storage fee for a year: ${storageFee}`);
  assert.equal(after.stake, MIN_STAKE);
});
