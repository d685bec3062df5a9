// Billing in the price market: a worker at coefficient 1500 is paid, and the client charged, base price x 1.5 to the
// nanoTON (each part rounded down); the worker's signed receipt, the proxy's charge and the client's own computation
// agree, and the client signs exactly that.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatJson, startChain, startPaidNetwork, MODEL } from "./settlement-fixture.js";
import { costOf } from "../../src/payments/pricing.js";
import { DEVNET_PRICE } from "../../src/payments/bootstrap.js";

test("a worker at coefficient 1500 bills base price x 1.5; receipt, proxy and client agree to the nanoTON", async () => {
  const chain = await startChain(mkdtempSync(join(tmpdir(), "coef-")));
  try {
    const p = await startPaidNetwork(chain, { upstream: { model: MODEL, tokens: 5 }, priceCoefficient: 1500 });
    try {
      let total = 0n;
      for (let i = 0; i < 3; i++) {
        const r = await chatJson(p.net.client.url, `alpha beta ${i}`, { max_coefficient: 2000 });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        const u = r.body.usage;
        const base = costOf(DEVNET_PRICE, u.prompt_tokens, u.completion_tokens);
        const expected = costOf(DEVNET_PRICE, u.prompt_tokens, u.completion_tokens, 1500);
        assert.equal(BigInt(u.total_cost), expected.total);
        assert.equal(expected.total * 2n, base.total * 3n, "exactly 1.5 x the base price here (prices are even)");
        total += expected.total;
      }
      // The client's books: nothing disputed or refused, signed what was charged.
      const cs = p.payer.status() as any;
      assert.equal(BigInt(cs.spent), total);
      assert.equal(cs.refusedReceipts.count, 0);
      await p.payer.flush();
      const ms = p.meter.status() as any;
      assert.equal(BigInt(ms.charged), total);
      assert.equal(BigInt(ms.fees) + BigInt(ms.workersEarned), total);
      // Capped under the worker's price: not served, not charged.
      const refused = await chatJson(p.net.client.url, "too dear", { max_coefficient: 1200 });
      assert.equal(refused.status, 503);
      assert.equal(BigInt((p.meter.status() as any).charged), total);
    } finally {
      await p.net.close();
    }
  } finally {
    await chain.srv.close();
  }
});
