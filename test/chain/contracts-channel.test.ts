// Client channel contract, exercised in @ton/sandbox through the ClientChannel wrapper only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { beginCell, toNano } from "@ton/core";
import {
  makeWorld, expectOk, expectExit, valueSent, valueBounced, txTo, TON, T0, CLOSE_DELAY,
  GLOBAL_ID,
} from "./contracts-helpers.js";
import { ed25519Signer, signVoucher, voucherCell } from "../../src/chain/vouchers.js";
import { ContractError } from "../../src/chain/contracts/errors.js";
import { ChannelStatus, ClientChannel, CHANNEL_MIN_PAYING_OP_VALUE } from "../../src/chain/contracts/ClientChannel.js";
import { STORAGE_RESERVE } from "../../src/chain/contracts/opcodes.js";

const pay = (w: Awaited<ReturnType<typeof makeWorld>>, cumulative: bigint) =>
  signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative }, w.clientKey);
const closeV = (w: Awaited<ReturnType<typeof makeWorld>>, cumulative: bigint) =>
  signVoucher({ kind: "close", globalId: GLOBAL_ID, channel: w.channel.address, cumulative }, w.clientKey);

test("deploy stores the config and the first deposit", async () => {
  const w = await makeWorld({ deposit: 5n * TON });
  const cfg = await w.channel.getConfig();
  assert.ok(cfg.client.equals(w.client.address));
  assert.ok(cfg.proxyOperator.equals(w.operator.address));
  assert.ok(cfg.proxyVault.equals(w.proxy.address));
  assert.deepEqual(cfg.clientKey, w.clientKey.publicKey);
  assert.equal(cfg.closeDelay, CLOSE_DELAY);
  assert.equal(cfg.nonce, 1n);
  assert.equal(cfg.globalId, GLOBAL_ID);
  assert.ok(w.channel.address.equals(ClientChannel.expectedAddress(cfg)), "the getters' config rebuilds the address");
  const st = await w.channel.getState();
  assert.equal(st.status, ChannelStatus.OPEN);
  assert.equal(st.deposited, 5n * TON);
  assert.equal(st.redeemed, 0n);
  assert.ok(st.balance < 5n * TON && st.balance > 5n * TON - toNano("0.01"), `deploy gas comes out of the deposit: ${st.balance}`);
});

test("top-ups from anyone (op or plain transfer) add to the deposit", async () => {
  const w = await makeWorld({ deposit: 1n * TON });
  expectOk(await w.channel.sendTopUp(w.stranger.getSender(), 2n * TON), w.channel.address);
  expectOk(await w.stranger.send({ to: w.channel.address, value: 3n * TON }), w.channel.address);
  const st = await w.channel.getState();
  assert.equal(st.deposited, 6n * TON);
  assert.ok(st.balance > 6n * TON - toNano("0.01"));
});

test("redeem pays the proxy contract the difference of cumulative vouchers", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  const before = await w.channel.getState();
  const proxyBefore = await w.proxy.getState();
  let r = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 2n * TON));
  expectOk(r, w.channel.address);
  expectOk(r, w.proxy.address);
  const mid = await w.channel.getState();
  assert.equal(mid.redeemed, 2n * TON);
  assert.equal(before.balance - mid.balance, 2n * TON, "the channel loses exactly the voucher amount; gas is paid by the operator's attached value");
  const sent = valueSent(r, w.channel.address, w.proxy.address);
  assert.ok(sent > 2n * TON && sent < 2n * TON + toNano("0.05"), `proxy gets the amount plus the unused gas: ${sent}`);
  r = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 5n * TON));
  expectOk(r, w.channel.address);
  const after = await w.channel.getState();
  assert.equal(after.redeemed, 5n * TON);
  assert.equal(mid.balance - after.balance, 3n * TON, "second voucher pays only 5 - 2 TON");
  const proxyAfter = await w.proxy.getState();
  assert.ok(proxyAfter.totalReceived - proxyBefore.totalReceived > 5n * TON);
});

test("replayed, older and forged vouchers are refused and change nothing", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  const v3 = pay(w, 3n * TON);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), v3), w.channel.address);
  const st = await w.channel.getState();
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), v3), w.channel.address, ContractError.STALE_VOUCHER);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 1n * TON)), w.channel.address, ContractError.STALE_VOUCHER);
  // signed by someone else
  const mallory = ed25519Signer(randomBytes(32));
  const forged = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: 4n * TON }, mallory);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), forged), w.channel.address, ContractError.BAD_SIGNATURE);
  // a real signature on a voucher whose amount was raised afterwards
  const raised = { cell: voucherCell({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: 9n * TON }), signature: v3.signature };
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), raised), w.channel.address, ContractError.BAD_SIGNATURE);
  // garbage signature bytes
  const junk = { cell: v3.cell, signature: randomBytes(64) };
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), junk), w.channel.address, ContractError.BAD_SIGNATURE);
  const after = await w.channel.getState();
  assert.equal(after.redeemed, st.redeemed);
  assert.equal(after.balance, st.balance, "failed redeems do not touch the client's money");
});

test("a voucher for another channel of the same client is refused (cross-channel replay)", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  const other = w.bc.openContract(ClientChannel.createFromConfig({ ...w.channelConfig, nonce: 2n }));
  expectOk(await other.sendDeploy(w.client.getSender(), 10n * TON), other.address);
  const forOther = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: other.address, cumulative: 1n * TON }, w.clientKey);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), forOther), w.channel.address, ContractError.WRONG_CONTRACT);
  expectOk(await other.sendRedeem(w.operator.getSender(), forOther), other.address);
});

test("voucher kinds are not interchangeable", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), closeV(w, 1n * TON)), w.channel.address, ContractError.WRONG_VOUCHER_TAG);
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), pay(w, 1n * TON)), w.channel.address, ContractError.WRONG_VOUCHER_TAG);
  const payout = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: w.channel.address, worker: w.worker.address, cumulative: 1n }, w.clientKey);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), payout), w.channel.address, ContractError.WRONG_VOUCHER_TAG);
});

test("overdraw: a voucher above the deposit (minus the storage reserve) is refused", async () => {
  const w = await makeWorld({ deposit: 2n * TON });
  const st = await w.channel.getState();
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 2n * TON)), w.channel.address, ContractError.INSUFFICIENT_FUNDS);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), pay(w, st.balance - STORAGE_RESERVE + 1n)), w.channel.address, ContractError.INSUFFICIENT_FUNDS);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), pay(w, st.balance - STORAGE_RESERVE)), w.channel.address);
  const after = await w.channel.getState();
  assert.equal(after.balance, STORAGE_RESERVE);
});

test("wrong senders are refused", async () => {
  const w = await makeWorld();
  expectExit(await w.channel.sendRedeem(w.stranger.getSender(), pay(w, 1n)), w.channel.address, ContractError.WRONG_SENDER);
  expectExit(await w.channel.sendRedeem(w.client.getSender(), pay(w, 1n)), w.channel.address, ContractError.WRONG_SENDER);
  expectExit(await w.channel.sendStartClose(w.operator.getSender()), w.channel.address, ContractError.WRONG_SENDER);
  expectExit(await w.channel.sendStartClose(w.stranger.getSender()), w.channel.address, ContractError.WRONG_SENDER);
  expectExit(await w.channel.sendCooperativeClose(w.client.getSender(), closeV(w, 1n)), w.channel.address, ContractError.WRONG_SENDER);
  expectExit(await w.channel.sendFinishClose(w.stranger.getSender()), w.channel.address, ContractError.CLOSE_NOT_REQUESTED);
});

test("unilateral close: proxy may redeem during the delay, client gets the rest after it, then nothing more", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 1n * TON)), w.channel.address);
  w.bc.now = T0 + 100;
  expectOk(await w.channel.sendStartClose(w.client.getSender()), w.channel.address);
  let st = await w.channel.getState();
  assert.equal(st.status, ChannelStatus.CLOSING);
  assert.equal(st.closeRequestedAt, T0 + 100);
  expectExit(await w.channel.sendStartClose(w.client.getSender()), w.channel.address, ContractError.CHANNEL_NOT_OPEN);
  // deposits are not taken once closing: they go back to the sender
  const topUp = await w.channel.sendTopUp(w.stranger.getSender(), 1n * TON);
  expectOk(topUp, w.channel.address);
  assert.ok(valueSent(topUp, w.channel.address, w.stranger.address) > 1n * TON - toNano("0.01"), "the top-up comes back");
  assert.equal((await w.channel.getState()).deposited, 10n * TON);
  // race: the proxy redeems its latest voucher inside the delay
  w.bc.now = T0 + 100 + CLOSE_DELAY - 1;
  expectExit(await w.channel.sendFinishClose(w.client.getSender()), w.channel.address, ContractError.CLOSE_TOO_EARLY);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 4n * TON)), w.channel.address);
  st = await w.channel.getState();
  assert.equal(st.redeemed, 4n * TON);
  w.bc.now = T0 + 100 + CLOSE_DELAY;
  const fin = await w.channel.sendFinishClose(w.stranger.getSender()); // anyone may finish; the money goes to the client
  expectOk(fin, w.channel.address);
  const refund = valueSent(fin, w.channel.address, w.client.address);
  assert.ok(refund > st.balance - STORAGE_RESERVE && refund < st.balance - STORAGE_RESERVE + toNano("0.05"), `refund ${refund}`);
  st = await w.channel.getState();
  assert.equal(st.status, ChannelStatus.CLOSED);
  assert.ok(st.balance <= STORAGE_RESERVE, "only the storage reserve stays");
  // after close: a newer voucher is worthless, and the channel cannot be reused
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 5n * TON)), w.channel.address, ContractError.CHANNEL_CLOSED);
  expectExit(await w.channel.sendFinishClose(w.client.getSender()), w.channel.address, ContractError.CHANNEL_CLOSED);
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 5n * TON)), w.channel.address, ContractError.CHANNEL_CLOSED);
  const late = await w.channel.sendTopUp(w.client.getSender(), 1n * TON);
  expectOk(late, w.channel.address);
  assert.ok(valueSent(late, w.channel.address, w.client.address) > 1n * TON - toNano("0.01"), "a deposit after the close comes back");
  assert.equal((await w.channel.getState()).status, ChannelStatus.CLOSED);
});

test("a NON-bounceable transfer to a closed channel is returned to its sender, not stuck for good", async () => {
  const w = await makeWorld({ deposit: 3n * TON });
  expectOk(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 1n * TON)), w.channel.address);
  const before = await w.channel.getState();
  const r = await w.stranger.send({ to: w.channel.address, value: 2n * TON, bounce: false });
  expectOk(r, w.channel.address);
  const back = valueSent(r, w.channel.address, w.stranger.address);
  assert.ok(back > 2n * TON - toNano("0.01") && back <= 2n * TON, `returned: ${back}`);
  const after = await w.channel.getState();
  assert.ok(after.balance <= before.balance, "nothing stays on the closed channel");
  assert.equal(after.deposited, before.deposited);
});

test("vouchers for another network are refused (devnet vouchers are void on mainnet and the other way round)", async () => {
  const w = await makeWorld({ deposit: 5n * TON });
  const devnet = signVoucher({ kind: "payment", globalId: -42, channel: w.channel.address, cumulative: 1n * TON }, w.clientKey);
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), devnet), w.channel.address, ContractError.WRONG_NETWORK);
  const closeDevnet = signVoucher({ kind: "close", globalId: -42, channel: w.channel.address, cumulative: 0n }, w.clientKey);
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), closeDevnet), w.channel.address, ContractError.WRONG_NETWORK);
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 1n * TON)), w.channel.address);
  // the same config on another network is another contract (the global id is part of the initial data)
  assert.ok(!ClientChannel.expectedAddress({ ...w.channelConfig, globalId: -42 }).equals(w.channel.address));
});

test("redeem with too little value is refused: bounce round trips never burn the client's money", async () => {
  const w = await makeWorld({ deposit: 10n * TON, deployProxy: false });
  // attack (before the fix): a tiny attached value, a missing proxy contract: each redeem's payment bounces, is
  // un-redeemed, and the fees of the round trip came out of the channel's balance, again and again
  expectExit(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 5n * TON), { value: toNano("0.001") }), w.channel.address, ContractError.VALUE_TOO_LOW);
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 1n * TON), { value: toNano("0.001") }), w.channel.address, ContractError.VALUE_TOO_LOW);
  const before = await w.channel.getState();
  for (let i = 0; i < 5; i++) {
    const r = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 5n * TON), { value: CHANNEL_MIN_PAYING_OP_VALUE });
    expectOk(r, w.channel.address);
    assert.equal(txTo(r, w.channel.address, { inMessageBounced: true }).success, true);
  }
  const after = await w.channel.getState();
  assert.equal(after.redeemed, 0n);
  assert.ok(after.balance >= before.balance, `five round trips at the minimum value cost the channel nothing: ${before.balance} -> ${after.balance}`);
});

test("cooperative close pays both sides at once, without delay", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  expectOk(await w.channel.sendRedeem(w.operator.getSender(), pay(w, 1n * TON)), w.channel.address);
  const st = await w.channel.getState();
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 1n * TON - 1n)), w.channel.address, ContractError.STALE_VOUCHER);
  expectExit(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 10n * TON)), w.channel.address, ContractError.INSUFFICIENT_FUNDS);
  const r = await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 3n * TON));
  expectOk(r, w.channel.address);
  const toClient = valueSent(r, w.channel.address, w.client.address);
  assert.equal(toClient, st.balance - 2n * TON - STORAGE_RESERVE, "client gets exactly the unspent rest");
  const toProxy = valueSent(r, w.channel.address, w.proxy.address);
  assert.ok(toProxy > 2n * TON - toNano("0.01") && toProxy < 2n * TON + toNano("0.05"), `proxy gets 3 - 1 TON: ${toProxy}`);
  const after = await w.channel.getState();
  assert.equal(after.status, ChannelStatus.CLOSED);
  assert.equal(after.redeemed, 3n * TON);
  assert.equal(after.balance, STORAGE_RESERVE);
});

test("cooperative close is allowed while a unilateral close is pending", async () => {
  const w = await makeWorld({ deposit: 3n * TON });
  expectOk(await w.channel.sendStartClose(w.client.getSender()), w.channel.address);
  expectOk(await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 0n)), w.channel.address);
  assert.equal((await w.channel.getState()).status, ChannelStatus.CLOSED);
});

test("bounced payment (proxy contract missing) is un-redeemed and can be redeemed later", async () => {
  const w = await makeWorld({ deposit: 10n * TON, deployProxy: false });
  const before = await w.channel.getState();
  const r = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 2n * TON));
  expectOk(r, w.channel.address);
  const bounced = txTo(r, w.channel.address, { inMessageBounced: true });
  assert.equal(bounced.success, true, "the channel handles the bounce");
  const st = await w.channel.getState();
  assert.equal(st.redeemed, 0n, "redeemed goes back to where it was");
  assert.ok(st.balance > before.balance - toNano("0.01"), `the money came back: ${st.balance}`);
  // once the proxy contract exists, the same voucher goes through
  expectOk(await w.proxy.sendDeploy(w.operator.getSender(), 10n * TON), w.proxy.address);
  const r2 = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 2n * TON));
  expectOk(r2, w.proxy.address);
  assert.equal((await w.channel.getState()).redeemed, 2n * TON);
});

test("unknown opcodes are refused and the value bounces back", async () => {
  const w = await makeWorld();
  const r = await w.stranger.send({ to: w.channel.address, value: 1n * TON, body: beginCell().storeUint(0xdeadbeef, 32).storeUint(0, 64).endCell() });
  expectExit(r, w.channel.address, ContractError.UNKNOWN_OP);
  assert.ok(valueBounced(r, w.channel.address, w.stranger.address) > 1n * TON - toNano("0.01"));
});

test("storage fees over a year idle: the channel still works and pays a small fee", async () => {
  const w = await makeWorld({ deposit: 10n * TON });
  const before = await w.channel.getState();
  w.bc.now = T0 + 365 * 24 * 3600;
  const r = await w.channel.sendRedeem(w.operator.getSender(), pay(w, 1n * TON));
  expectOk(r, w.channel.address);
  const after = await w.channel.getState();
  const storageFee = before.balance - after.balance - 1n * TON;
  assert.ok(storageFee > 0n, "a year of storage costs something");
  assert.ok(storageFee < STORAGE_RESERVE, `a year of storage costs less than the reserve: ${storageFee}`);
  // and the client can still close and get the rest
  expectOk(await w.channel.sendStartClose(w.client.getSender()), w.channel.address);
  w.bc.now += CLOSE_DELAY;
  expectOk(await w.channel.sendFinishClose(w.client.getSender()), w.channel.address);
});

test("a payment bouncing after a cooperative close goes on to the client, not stuck in the channel", async () => {
  const w = await makeWorld({ deposit: 5n * TON, deployProxy: false });
  const st = await w.channel.getState();
  const r = await w.channel.sendCooperativeClose(w.operator.getSender(), closeV(w, 1n * TON));
  expectOk(r, w.channel.address);
  const toClient = valueSent(r, w.channel.address, w.client.address);
  assert.ok(toClient > st.balance - STORAGE_RESERVE - toNano("0.01"), `client got the rest and the bounced payment: ${toClient}`);
  const after = await w.channel.getState();
  assert.equal(after.status, ChannelStatus.CLOSED);
  assert.equal(after.redeemed, 0n);
  assert.ok(after.balance <= STORAGE_RESERVE);
});
