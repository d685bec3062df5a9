// Restarting every role on the same ledger files loses no voucher and pays nothing twice.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatJson, startChain, startPaidNetwork } from "./settlement-fixture.js";
import { Ledger } from "../../src/payments/ledger.js";

const num = (s: unknown) => BigInt(s as string);
const until = async (ok: () => boolean) => {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
};

test("proxy, worker and client restart on their ledgers: cumulative vouchers continue, redeems and payouts are exact", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-restart-"));
  const chain = await startChain(dir);
  try {
    // Run 1: three requests, the proxy redeems once, the worker gets (but does not claim) a payout voucher.
    let p = await startPaidNetwork(chain);
    let sumA = 0n;
    for (let i = 0; i < 3; i++) sumA += BigInt((await chatJson(p.net.client.url, `first run ${i}`)).body.usage.total_cost);
    await until(() => num(p.meter.status().signed) === sumA);
    await p.meter.flushRedeems(true);
    await p.meter.flushPayouts(true);
    await until(() => num(p.payee.status().earned) > 0n);
    const earnedA = num(p.payee.status().earned);
    assert.ok(earnedA > 0n);
    await p.net.close();

    // Run 2: everything restarts on the same files.
    p = await startPaidNetwork(chain);
    assert.equal(num(p.payer.status().spent), sumA, "the client remembers what it spent");
    assert.equal(num(p.payer.status().signed), sumA, "and its newest voucher");
    assert.equal(num(p.meter.status().charged), sumA, "the proxy remembers what it charged");
    assert.equal(num(p.payee.status().earned), earnedA, "the worker kept its payout voucher");
    let sumB = 0n;
    for (let i = 0; i < 2; i++) sumB += BigInt((await chatJson(p.net.client.url, `second run ${i}`)).body.usage.total_cost);
    const total = sumA + sumB;
    assert.equal(num(p.payer.status().signed), total, "vouchers continue from the previous cumulative");
    await until(() => num(p.meter.status().signed) === total);
    await p.meter.flushRedeems(true);
    await p.meter.flushRedeems(true); // nothing new: no transaction
    assert.equal(p.meter.redeemTransfers, 1);
    assert.equal((await chain.ton.channelState(chain.boot.channel)).redeemed, total, "redeemed exactly the signed total, nothing twice");
    await p.meter.flushPayouts(true);
    const worker = chain.boot.wallets.workers[0]!;
    await until(() => num(p.payee.status().earned) > earnedA);
    const earned = num(p.payee.status().earned);
    await p.payee.claim(true);
    assert.equal(await chain.ton.paidTo(chain.boot.proxyContract, worker), earned, "the worker is paid its cumulative earnings once");
    await p.net.close();

    // The ledgers agree: proxy receipts = client receipts, on-chain redeem confirmed once.
    const proxyLedger = Ledger.open(chain.configs.proxy.ledger);
    const clientLedger = Ledger.open(chain.configs.client.ledger);
    try {
      assert.equal(proxyLedger.countReceipts(), 5);
      assert.equal(clientLedger.countReceipts(), 5);
      assert.equal(proxyLedger.totals().spent, clientLedger.totals().spent);
      assert.equal(proxyLedger.totals().redeemed, total);
      assert.equal(proxyLedger.pendingSettlements().length, 0);
    } finally {
      proxyLedger.close();
      clientLedger.close();
    }
  } finally {
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
