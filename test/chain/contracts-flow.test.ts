// End-to-end settlement through all three contracts, and a model-based random test of the channel:
// whatever the order of deposits, vouchers and closes, the client never pays more than it signed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { Blockchain } from "@ton/sandbox";
import { makeWorld, expectOk, txTo, valueSent, TON, T0, CLOSE_DELAY, GLOBAL_ID } from "./contracts-helpers.js";
import { ed25519Signer, signVoucher } from "../../src/chain/vouchers.js";
import { RootContract, BPS_DENOMINATOR } from "../../src/chain/contracts/RootContract.js";
import { ProxyContract, ADD_STAKE_GAS_RESERVE } from "../../src/chain/contracts/ProxyContract.js";
import { ClientChannel, ChannelStatus } from "../../src/chain/contracts/ClientChannel.js";
import { STORAGE_RESERVE } from "../../src/chain/contracts/opcodes.js";

const seed = (s: string) => createHash("sha256").update(s).digest();

test("settlement: root params -> proxy + channel; many requests, one redeem, worker payouts, operator fee", async () => {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const [owner, operator, client, worker] = await Promise.all(["owner", "operator", "client", "worker"].map((n) => bc.treasury(n)));
  const clientKey = ed25519Signer(seed("client"));
  const proxyKey = ed25519Signer(seed("proxy"));
  const root = bc.openContract(RootContract.createFromConfig({
    owner: owner.address,
    params: { proxyFeeBps: 1000, clientCloseDelay: 600, proxyUnstakeDelay: 3600, minProxyStake: 5n * TON, minClientDeposit: TON },
    globalId: GLOBAL_ID,
  }));
  expectOk(await root.sendDeploy(owner.getSender(), TON), root.address);
  const model = seed("Qwen/Qwen3-0.6B");
  expectOk(await root.sendSetModel(owner.getSender(), model, { promptPrice: 20n, completionPrice: 60n }), root.address);

  // both sides configure their contracts from the root
  const params = await root.getParams();
  const registration = { owner: operator.address, minStake: params.minProxyStake, unstakeDelay: params.proxyUnstakeDelay };
  const proxy = bc.openContract(ProxyContract.createFromConfig({ ...registration, root: root.address, signingKey: proxyKey.publicKey, globalId: GLOBAL_ID }));
  expectOk(await proxy.sendDeploy(operator.getSender(), params.minProxyStake + TON), proxy.address);
  // the root computes the proxy's address from the config: the genuine contract is what gets registered
  expectOk(await root.sendRegisterProxy(owner.getSender(), registration, { signingKey: proxyKey.publicKey, identityKey: seed("id"), endpoint: "127.0.0.1:11002" }), root.address);
  const registered = await root.getProxyInfo(proxy.address);
  assert.ok(registered && (await proxy.getState()).active);
  const channel = bc.openContract(ClientChannel.createFromConfig({
    client: client.address, clientKey: clientKey.publicKey, proxyOperator: operator.address, proxyVault: proxy.address,
    closeDelay: params.clientCloseDelay, nonce: 1n, globalId: GLOBAL_ID,
  }));
  expectOk(await channel.sendDeploy(client.getSender(), 3n * TON), channel.address);
  // the proxy checks the channel before serving: its config must match the root's rules
  const chCfg = await channel.getConfig();
  assert.equal(chCfg.closeDelay, params.clientCloseDelay);
  assert.ok(chCfg.proxyVault.equals(proxy.address));

  // 1000 requests off chain: the client signs a cumulative voucher after each, nothing goes on chain
  const price = (await root.getModelPrice(model))!;
  let cumulative = 0n;
  let latest = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: channel.address, cumulative: 0n }, clientKey);
  for (let i = 0; i < 1000; i++) {
    cumulative += 500n * price.promptPrice + 200n * price.completionPrice;
    latest = signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: channel.address, cumulative }, clientKey);
  }
  assert.equal(cumulative, 1000n * (500n * 20n + 200n * 60n));
  const r = await channel.sendRedeem(operator.getSender(), latest);
  expectOk(r, proxy.address);
  assert.equal((await channel.getState()).redeemed, cumulative);

  // the worker's share (price minus the proxy fee), paid by one proxy-signed voucher
  const workerShare = (cumulative * BigInt(BPS_DENOMINATOR - params.proxyFeeBps)) / BigInt(BPS_DENOMINATOR);
  const payout = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: proxy.address, worker: worker.address, cumulative: workerShare }, proxyKey);
  const pr = await proxy.sendClaimPayout(worker.getSender(), payout);
  expectOk(pr, proxy.address);
  assert.ok(valueSent(pr, proxy.address, worker.address) >= workerShare);
  const ps = await proxy.getState();
  assert.equal(ps.totalPaidOut, workerShare);
  // the operator takes what is above the stake
  expectOk(await proxy.sendWithdrawFee(operator.getSender(), ps.freeBalance), proxy.address);
  const end = await proxy.getState();
  assert.equal(end.freeBalance, 0n);
  assert.equal(end.stake, params.minProxyStake + TON - ADD_STAKE_GAS_RESERVE);
});

type Step =
  | { t: "sign"; add: bigint }
  | { t: "redeem" }
  | { t: "topup"; value: bigint }
  | { t: "startClose" }
  | { t: "wait"; s: number }
  | { t: "finishClose" }
  | { t: "coopClose" };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 1n, max: 2n * TON }).map((add) => ({ t: "sign" as const, add })) },
  { weight: 3, arbitrary: fc.constant({ t: "redeem" as const }) },
  { weight: 1, arbitrary: fc.bigInt({ min: TON / 10n, max: 3n * TON }).map((value) => ({ t: "topup" as const, value })) },
  { weight: 1, arbitrary: fc.constant({ t: "startClose" as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 * CLOSE_DELAY }).map((s) => ({ t: "wait" as const, s })) },
  { weight: 1, arbitrary: fc.constant({ t: "finishClose" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "coopClose" as const }) },
);

test("model-based: any sequence of deposits, vouchers and closes keeps the channel's books right", async () => {
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 3, maxLength: 12 }), async (steps) => {
    const w = await makeWorld({ deposit: 3n * TON });
    let signed = 0n; // highest cumulative the client signed
    let model = { status: ChannelStatus.OPEN as number, redeemed: 0n, closeAt: 0 };
    for (const step of steps) {
      const before = await w.channel.getState();
      const spendable = before.balance - STORAGE_RESERVE;
      let res;
      switch (step.t) {
        case "sign": signed += step.add; continue;
        case "wait": w.bc.now = (w.bc.now ?? T0) + step.s; continue;
        case "redeem": {
          res = await w.channel.sendRedeem(w.operator.getSender(), signVoucher({ kind: "payment", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: signed }, w.clientKey));
          const ok = model.status !== ChannelStatus.CLOSED && signed > model.redeemed && signed - model.redeemed <= spendable;
          assert.equal(txTo(res, w.channel.address).success, ok, `redeem ${signed} (redeemed ${model.redeemed}, spendable ${spendable}, status ${model.status})`);
          if (ok) {
            assert.equal(valueSent(res, w.channel.address, w.proxy.address) >= signed - model.redeemed, true);
            model.redeemed = signed;
          }
          break;
        }
        case "topup": {
          res = await w.channel.sendTopUp(w.client.getSender(), step.value);
          assert.equal(txTo(res, w.channel.address).success, true);
          // credited while open; otherwise it goes back to the sender
          if (model.status !== ChannelStatus.OPEN) assert.ok(valueSent(res, w.channel.address, w.client.address) > step.value - TON / 100n);
          break;
        }
        case "startClose": {
          res = await w.channel.sendStartClose(w.client.getSender());
          const ok = model.status === ChannelStatus.OPEN;
          assert.equal(txTo(res, w.channel.address).success, ok);
          if (ok) { model.status = ChannelStatus.CLOSING; model.closeAt = w.bc.now!; }
          break;
        }
        case "finishClose": {
          res = await w.channel.sendFinishClose(w.client.getSender());
          const ok = model.status === ChannelStatus.CLOSING && w.bc.now! >= model.closeAt + CLOSE_DELAY;
          assert.equal(txTo(res, w.channel.address).success, ok);
          if (ok) model.status = ChannelStatus.CLOSED;
          break;
        }
        case "coopClose": {
          res = await w.channel.sendCooperativeClose(w.operator.getSender(), signVoucher({ kind: "close", globalId: GLOBAL_ID, channel: w.channel.address, cumulative: signed }, w.clientKey));
          const ok = model.status !== ChannelStatus.CLOSED && signed >= model.redeemed && signed - model.redeemed <= spendable;
          assert.equal(txTo(res, w.channel.address).success, ok);
          if (ok) { model.redeemed = signed; model.status = ChannelStatus.CLOSED; }
          break;
        }
      }
      const after = await w.channel.getState();
      assert.equal(after.status, model.status);
      assert.equal(after.redeemed, model.redeemed);
      assert.ok(after.redeemed <= signed, "never more than the client signed");
      assert.ok(after.balance >= STORAGE_RESERVE || after.status === ChannelStatus.CLOSED);
      if (step.t === "redeem" && after.redeemed !== before.redeemed) {
        // exactly the voucher difference, plus the storage fee for the time that passed
        const extra = before.balance - after.balance - (after.redeemed - before.redeemed);
        assert.ok(extra >= 0n && extra < 1_000_000n, `a redeem takes the voucher difference (+ storage ${extra})`);
      }
    }
  }), { numRuns: 15 });
});

test("root approval: RegisterProxy with an attested key approves the genuine proxy's key, whether or not it is deployed yet", async () => {
  const bc = await Blockchain.create({ config: "slim" });
  bc.now = T0;
  const [owner, operator, worker] = await Promise.all(["owner", "operator", "worker"].map((n) => bc.treasury(n)));
  const proxyKey = ed25519Signer(seed("attested proxy key"));
  const params = { proxyFeeBps: 1000, clientCloseDelay: 600, proxyUnstakeDelay: 3600, minProxyStake: 5n * TON, minClientDeposit: TON };
  const root = bc.openContract(RootContract.createFromConfig({ owner: owner.address, params, globalId: GLOBAL_ID }));
  expectOk(await root.sendDeploy(owner.getSender(), TON), root.address);
  const registration = { owner: operator.address, minStake: params.minProxyStake, unstakeDelay: params.proxyUnstakeDelay };
  const proxy = bc.openContract(ProxyContract.createFromConfig({ ...registration, root: root.address, signingKey: proxyKey.publicKey, globalId: GLOBAL_ID }));
  // registered (attested) BEFORE the operator deploys: the root's ApproveKey carries the proxy's initial state
  const r = await root.sendRegisterProxy(owner.getSender(), registration, { signingKey: proxyKey.publicKey, identityKey: seed("id"), endpoint: "x" }, { keyAttested: true, value: TON / 10n });
  expectOk(r, root.address);
  expectOk(r, proxy.address);
  assert.equal((await proxy.getState()).keyApproved, true);
  expectOk(await proxy.sendDeploy(operator.getSender(), params.minProxyStake + TON), proxy.address);
  const st = await proxy.getState();
  assert.equal(st.keyApproved, true);
  assert.equal(st.active, true);
  // with an approved key, the stake backs a worker's voucher while the proxy unstakes
  expectOk(await proxy.sendStartUnstake(operator.getSender()), proxy.address);
  const v = signVoucher({ kind: "payout", globalId: GLOBAL_ID, proxy: proxy.address, worker: worker.address, cumulative: 2n * TON }, proxyKey);
  expectOk(await proxy.sendClaimPayout(worker.getSender(), v), proxy.address);
  assert.ok((await proxy.getState()).stake < st.stake, "paid partly out of the stake");
});
