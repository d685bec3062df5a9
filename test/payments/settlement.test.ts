// Settlement in the network: per-token costs in answers, client-signed cumulative vouchers, batched redemption
// and payouts on a local chain, and refusals of bad vouchers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { chatJson, chatStreamUsage, startChain, startPaidNetwork, CLIENT_ID, MODEL, type Chain, type PaidNetwork } from "./settlement-fixture.js";
import { DEVNET_PRICE } from "../../src/payments/bootstrap.js";
import { encodeSignedVoucher, ed25519Signer, signVoucher } from "../../src/chain/vouchers.js";
import { redeemBody, CHANNEL_OP_VALUE } from "../../src/chain/contracts/ClientChannel.js";
import { keyPairFromSeedHex } from "../../src/payments/ton.js";
import { WalletService } from "../../src/chain/wallet.js";
import { costOf, maxCostOf, workerShare, parseCostFields, PriceBook } from "../../src/payments/pricing.js";
import { MeterRefusal } from "../../src/proxy/meter.js";
import { sessionBinding } from "../../src/protocol/session-binding.js";

test("pricing: bigint costs, worker share rounds down, max cost bounds the real cost, cost fields parse strictly", () => {
  const price = { promptPrice: 7n, completionPrice: 11n };
  assert.deepEqual(costOf(price, 3, 5), { prompt: 21n, completion: 55n, total: 76n });
  assert.equal(workerShare(76n, 1000), 68n); // 76 * 0.9 = 68.4
  assert.equal(workerShare(10n ** 30n, 0), 10n ** 30n);
  assert.equal(workerShare(12345n, 10_000), 0n);
  assert.throws(() => workerShare(1n, 10_001), /proxyFeeBps/);
  assert.equal(maxCostOf(price, 20, 100), 100n * 7n + 20n * 11n);
  assert.throws(() => costOf(price, -1, 0), /prompt_tokens/);
  assert.deepEqual(parseCostFields({ prompt_total_cost: "1", completion_total_cost: "2", total_cost: "3" }), { prompt: 1n, completion: 2n, total: 3n });
  assert.throws(() => parseCostFields({ prompt_total_cost: "1", completion_total_cost: "2", total_cost: "4" }), /do not add up/);
  assert.throws(() => parseCostFields({ prompt_total_cost: "-1", completion_total_cost: "2", total_cost: "1" }), /decimal/);
  const book = PriceBook.fromRoot(500, new Map([["ab".repeat(32), price]]), { m: "AB".repeat(32), other: "cd".repeat(32) });
  assert.deepEqual(book.models(), ["m"]);
  assert.throws(() => book.price("other"), /no price in the root contract/);
});

async function withChain(fn: (chain: Chain, dir: string) => Promise<void>, deposit?: bigint): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-settle-"));
  const chain = await startChain(dir, deposit);
  try {
    await fn(chain, dir);
  } finally {
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function num(s: unknown): bigint {
  return BigInt(s as string);
}

test("costs in answers add up to the client's spent; one redeem transaction for many requests; balances follow on chain", async () => {
  await withChain(async (chain) => {
    let p: PaidNetwork | undefined = await startPaidNetwork(chain);
    try {
      const { net, meter, payee, payer } = p;
      let sum = 0n;
      const N = 6;
      for (let i = 0; i < N; i++) {
        const r = await chatJson(net.client.url, `request number ${i} with a few words`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const u = r.body.usage;
        assert.equal(typeof u.total_cost, "number");
        assert.equal(u.total_cost, u.prompt_total_cost + u.completion_total_cost);
        assert.equal(BigInt(u.total_cost), BigInt(u.prompt_tokens) * DEVNET_PRICE.promptPrice + BigInt(u.completion_tokens) * DEVNET_PRICE.completionPrice);
        sum += BigInt(u.total_cost);
      }
      const su = await chatStreamUsage(net.client.url, "a streamed request");
      assert.ok(su.total_cost! > 0, "the final streamed chunk carries the cost");
      sum += BigInt(su.total_cost!);

      const cs = payer.status();
      assert.equal(num(cs.spent), sum, "client's spent = sum of total_cost in the answers");
      assert.equal(num(cs.signed), sum, "the client signed exactly what it spent");
      const ps = meter.status();
      assert.equal(num(ps.charged), sum);

      // The idle flush hands the newest voucher over without another request.
      for (let i = 0; i < 50 && num(meter.status().signed) < sum; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(num(meter.status().signed), sum);

      const before = await chain.ton.proxyState(chain.boot.proxyContract);
      const operator = new WalletService(chain.ton.client, keyPairFromSeedHex(chain.boot.seeds.operator), "devnet");
      const seqnoBefore = await operator.seqno();
      await meter.flushRedeems(true);
      assert.equal(meter.redeemTransfers, 1, "one wallet transaction redeems all 7 requests");
      assert.equal(await operator.seqno(), seqnoBefore + 1, "on chain: the operator wallet made exactly one transaction");
      const st = await chain.ton.channelState(chain.boot.channel);
      assert.equal(st.redeemed, sum, "on chain: the channel redeemed exactly what the client signed");
      const after = await chain.ton.proxyState(chain.boot.proxyContract);
      assert.ok(after.totalReceived - before.totalReceived >= sum, "the proxy contract received the redeemed money");
      assert.equal(num(meter.status().redeemed), sum);

      // Payout: a proxy-signed cumulative voucher reaches the worker over the connection; the worker claims it.
      await meter.flushPayouts(true);
      const share = workerShare(sum, chain.boot.params.proxyFeeBps);
      for (let i = 0; i < 50 && num(payee.status().earned) < share; i++) await new Promise((r) => setTimeout(r, 20));
      // Per-request shares round down, so the worker's total is at most the share of the sum.
      const earned = num(payee.status().earned);
      assert.ok(earned > 0n && earned <= share && share - earned < 8n, `earned ${earned} vs share ${share}`);
      assert.equal(num(meter.status().fees), sum - earned, "proxy fees = charged - worker earnings");
      const workerAddr = chain.boot.wallets.workers[0]!;
      const walletBefore = await chain.ton.balance(workerAddr);
      await payee.claim(true);
      assert.equal(payee.claims, 1);
      assert.equal(await chain.ton.paidTo(chain.boot.proxyContract, workerAddr), earned, "on chain: the worker was paid its voucher");
      assert.equal(num(payee.status().paid), earned);
      const walletAfter = await chain.ton.balance(workerAddr);
      assert.ok(walletAfter - walletBefore > earned - toNano("0.05"), "the worker wallet received the payout (minus claim gas)");
      // Claiming again pays nothing more (the voucher is cumulative).
      await payee.claim(true);
      assert.equal(payee.claims, 1);
      assert.equal(await chain.ton.paidTo(chain.boot.proxyContract, workerAddr), earned);

      const snapshot = (await (await fetch(net.client.url + "/status")).json()) as any;
      assert.equal(snapshot.payments.spent, sum.toString());
      assert.equal(snapshot.payments.network, "devnet");
    } finally {
      await p?.net.close();
      p = undefined;
    }
  });
});

test("a proxy can never redeem more than the client signed; tampered, foreign and over-deposit vouchers are refused", async () => {
  await withChain(async (chain) => {
    const p = await startPaidNetwork(chain);
    try {
      const { net, meter } = p;
      const r = await chatJson(net.client.url, "one paid request");
      assert.equal(r.status, 200);
      const signed = BigInt(r.body.usage.total_cost);
      for (let i = 0; i < 50 && num(meter.status().signed) < signed; i++) await new Promise((r) => setTimeout(r, 20));
      await meter.flushRedeems(true);
      assert.equal((await chain.ton.channelState(chain.boot.channel)).redeemed, signed);

      // The operator forges a voucher for more (signing with its own key): the channel refuses it.
      const operator = new WalletService(chain.ton.client, keyPairFromSeedHex(chain.boot.seeds.operator), "devnet");
      const forged = signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative: signed + toNano("1") }, ed25519Signer(operator.seed));
      await operator.sendBatch([{ to: chain.boot.channel, value: CHANNEL_OP_VALUE, body: redeemBody(forged) }]);
      // Replaying the client's real voucher redeems nothing more either.
      const clientSigner = ed25519Signer(keyPairFromSeedHex(chain.boot.seeds.client).secretKey.subarray(0, 32));
      const real = signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative: signed }, clientSigner);
      await operator.sendBatch([{ to: chain.boot.channel, value: CHANNEL_OP_VALUE, body: redeemBody(real) }]);
      assert.equal((await chain.ton.channelState(chain.boot.channel)).redeemed, signed, "nothing beyond the client's signature left the channel");

      const ctx = { clientId: CLIENT_ID, session: sessionBinding(p.net.client.link.conn!), insecure: false };
      const send = (voucher: string) => meter.handleClientRequest({ ...ctx }, { type: "voucher", voucher });
      // Tampered: a valid voucher with the amount bits changed.
      const good = signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative: signed + 1000n }, clientSigner);
      const bytes = encodeSignedVoucher(good);
      const tampered = Buffer.from(bytes);
      tampered[tampered.length - 1]! ^= 1;
      await assert.rejects(send(tampered.toString("base64")), (e: Error) => e instanceof MeterRefusal && /voucher refused/.test(e.message));
      // Signed by someone else.
      await assert.rejects(send(encodeSignedVoucher(signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative: 5n }, ed25519Signer(Buffer.alloc(32, 9)))).toString("base64")), /signature does not verify/);
      // For another channel.
      await assert.rejects(send(encodeSignedVoucher(signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.proxyContract, cumulative: 5n }, clientSigner)).toString("base64")), /expected/);
      // Above the deposit.
      await assert.rejects(send(encodeSignedVoucher(signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative: toNano("50") }, clientSigner)).toString("base64")), /holds only/);
      // Garbage.
      await assert.rejects(send("!!!"), /base64/);
      // Nothing of that was recorded.
      assert.equal(num(meter.status().signed), signed);

      // Registration needs the channel key's proof: another client cannot charge this channel.
      await assert.rejects(meter.handleClientRequest({ clientId: "intruder", session: "00".repeat(32), insecure: false }, { type: "register", channel: chain.boot.channel.toString(), proof: "00".repeat(64) }), /registration proof/);
    } finally {
      await p.net.close();
    }
  });
});

test("admission: a client that stops paying is refused after one request; an empty channel is refused with 402", async () => {
  await withChain(async (chain) => {
    const p = await startPaidNetwork(chain);
    try {
      const { meter } = p;
      const ctx = { clientId: CLIENT_ID, session: sessionBinding(p.net.client.link.conn!), insecure: false };
      const head = (id: string, maxTokens = 20) => ({ op: "inference" as const, requestId: id, endpoint: "chat" as const, model: "fake-model", maxTokens, bodyBytes: 200 });
      const usage = { prompt_tokens: 150, completion_tokens: 20, total_tokens: 170 };
      // Without vouchers: the first request is admitted and settled; now the client owes its cost...
      meter.voucherGraceMs = 60_000;
      await meter.admit(ctx, head("r1"));
      await meter.settle(ctx, head("r1"), "w1", usage);
      // ...which is less than one request's maximum, so one more is admitted; after it the debt exceeds that.
      await meter.admit(ctx, head("r2"));
      await meter.settle(ctx, head("r2"), "w1", usage);
      // A concurrent app still gets in while those answers are fresh (their vouchers may be on the way)...
      await meter.admit(ctx, head("r3"));
      meter.release(ctx, head("r3"));
      // ...but once the grace is over, a client that did not pay is refused (after waiting a moment for its voucher).
      meter.voucherGraceMs = 0;
      meter.exposureWaitMs = 50;
      await assert.rejects(meter.admit(ctx, head("r3")), (e: Error) => e instanceof MeterRefusal && e.code === "voucher_missing" && /previous voucher missing/.test(e.message));
      // A request larger than the whole deposit is refused up front.
      await assert.rejects(meter.admit(ctx, head("big", 10_000_000)), /insufficient funds/);
      // An unregistered client gets a 402 that explains what to do.
      await assert.rejects(meter.admit({ clientId: "stranger", session: "11".repeat(32), insecure: false }, head("x")), /no payment channel is registered/);
      // The app hears a 402 that counts the prompt too (here it alone is worth more than the deposit), before anything is sent.
      const big = await fetch(`${p.net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "x".repeat(900_000) }], max_tokens: 5 }) });
      const err = ((await big.json()) as { error: { message: string; code: string } }).error;
      assert.equal(big.status, 402, err.message);
      assert.equal(err.code, "insufficient_funds");
      assert.match(err.message, /a 9\d{5}-byte prompt and max_tokens 5\) may cost up to \d+ nanoTON/);
    } finally {
      await p.net.close();
    }
  }, toNano("1.5"));
});

test("lazy voucher verification: piggybacked vouchers are verified when admission needs them or per interval; a forged one is never credited", async () => {
  await withChain(async (chain) => {
    const p = await startPaidNetwork(chain);
    try {
      const { meter } = p;
      const ctx = { clientId: CLIENT_ID, session: sessionBinding(p.net.client.link.conn!), insecure: false };
      const clientSigner = ed25519Signer(keyPairFromSeedHex(chain.boot.seeds.client).secretKey.subarray(0, 32));
      const voucher = (cumulative: bigint, signer = clientSigner) =>
        encodeSignedVoucher(signVoucher({ kind: "payment", globalId: chain.ton.globalId, channel: chain.boot.channel, cumulative }, signer)).toString("base64");
      const head = (id: string, v?: string) => ({ op: "inference" as const, requestId: id, endpoint: "chat" as const, model: "fake-model", maxTokens: 20, bodyBytes: 200, ...(v ? { payment: { voucher: v } } : {}) });
      const usage = { prompt_tokens: 150, completion_tokens: 20, total_tokens: 170 };
      meter.voucherGraceMs = 0;
      meter.voucherVerifyIntervalMs = 60_000;
      const before = meter.vouchersVerified;
      let spent = 0n;
      // A sequential client: each request carries the voucher for everything answered before it.
      for (let i = 0; i < 6; i++) {
        await meter.admit(ctx, head(`lazy-${i}`, spent ? voucher(spent) : undefined));
        spent += BigInt((await meter.settle(ctx, head(`lazy-${i}`), "w1", usage)).cost!.total_cost);
      }
      const verified = meter.vouchersVerified - before;
      assert.ok(verified >= 1 && verified < 5, `${verified} verifications for 5 vouchers: only when admission needed one`);
      // "signed" only ever counts verified vouchers.
      assert.ok(num(meter.status().signed) < spent);

      // A forged voucher (another key) for everything: not credited; refused as soon as admission has to rely on it.
      await assert.rejects(async () => {
        for (let i = 0; i < 10; i++) {
          await meter.admit(ctx, head(`forged-${i}`, voucher(spent, ed25519Signer(Buffer.alloc(32, 7)))));
          spent += BigInt((await meter.settle(ctx, head(`forged-${i}`), "w1", usage)).cost!.total_cost);
        }
      }, (e: Error) => e instanceof MeterRefusal && /voucher refused: .*signature/.test(e.message));
      assert.ok(num(meter.status().signed) < spent, "the forged amount was never counted as signed");

      // With the interval at 0, every new voucher is checked at once (the strict mode).
      meter.voucherVerifyIntervalMs = 0;
      await meter.admit(ctx, head("honest", voucher(spent)));
      assert.equal(num(meter.status().signed), spent);
      meter.release(ctx, head("honest"));
    } finally {
      await p.net.close();
    }
  });
});

test("untrusted payment messages: random bytes never crash the voucher decoder or the config parser", async () => {
  const fc = (await import("fast-check")).default;
  const { decodeVoucherBase64 } = await import("../../src/payments/messages.js");
  const { parsePaymentsConfig } = await import("../../src/payments/config.js");
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
    try {
      decodeVoucherBase64(Buffer.from(b).toString("base64"));
    } catch (e) {
      assert.ok(e instanceof Error && e.message.length > 0);
    }
  }), { numRuns: 500 });
  fc.assert(fc.property(fc.anything(), (j) => {
    try {
      parsePaymentsConfig(j);
    } catch (e) {
      assert.ok(e instanceof Error && /payments config|address/.test(e.message), (e as Error).message);
    }
  }), { numRuns: 300 });
});

test("a proxy that bills more than the worker signed: the client refuses the receipt and never signs for the extra", async () => {
  await withChain(async (chain) => {
    let overbill = false;
    let honest = 0n;
    const p = await startPaidNetwork(chain, {
      tamper: {
        trailer: (t) => {
          const cost = t.cost as Record<string, string> | undefined;
          if (!overbill || !cost?.total_cost) return t;
          // Doubles the completion part of what it bills (the worker's signed receipt is left as it is).
          const completion = BigInt(cost.completion_total_cost!) * 2n;
          return { ...t, cost: { ...cost, completion_total_cost: completion.toString(), total_cost: (BigInt(cost.prompt_total_cost!) + completion).toString() } };
        },
      },
    });
    try {
      const { net, payer } = p;
      const first = await chatJson(net.client.url, "an honest answer first");
      assert.equal(first.status, 200, JSON.stringify(first.body));
      honest = BigInt(first.body.usage.total_cost);
      assert.equal(num(payer.status().signed), honest);

      overbill = true;
      const r = await fetch(`${net.client.url}/v1/chat/completions`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "an overbilled answer" }], max_tokens: 20 }),
      });
      const body = (await r.json()) as any;
      assert.match(r.headers.get("x-cocoon-receipt") ?? "", /^refused: .*billed at/, JSON.stringify(body));
      // The client signed nothing for the overbilled answer: its cumulative voucher is still the honest first answer's.
      assert.equal(num(payer.status().signed), honest, `signed ${payer.status().signed} after an overbilled answer`);
      const st = (await (await fetch(`${net.client.url}/status`)).json()) as any;
      assert.equal(st.sealing.receipts.refused, 1);
    } finally {
      await p.net.close();
      await p.payee.close?.();
    }
  });
});
