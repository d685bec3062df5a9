// The price market: workers announce a price coefficient, the client caps it per request (max_coefficient field or
// x-cocoon-max-coefficient header) and in its config, the proxy routes only to workers under the cap, /v1/models
// shows the range on offer. Billing at base price x coefficient is in test/payments/price-coefficient.test.ts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat, startTestNetwork } from "../helpers/network.js";

const msg = [{ role: "user", content: "hi" }];

test("the cap routes only to workers at or under it; over every worker's price, a 503 that names the cheapest", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 2 }, { model: "m", tokens: 2 }], { priceCoefficients: [3000, 1000] });
  try {
    const models = (await (await fetch(`${net.client.url}/v1/models`)).json()) as any;
    assert.deepEqual(models.data[0].price_coefficient, { min: 1000, max: 3000, client_max: 4000 });
    // Under 3000: only w2, every time (w1 would be picked half the time on load alone).
    for (let i = 0; i < 6; i++) {
      const r = await chat(net.client.url, { model: "m", messages: msg, max_coefficient: 2000 });
      assert.equal(r.status, 200, await r.clone().text());
      assert.equal(r.headers.get("x-cocoon-worker"), "w2");
    }
    const viaHeader = await chat(net.client.url, { model: "m", messages: msg }, { headers: { "content-type": "application/json", "x-cocoon-max-coefficient": "1000" } });
    assert.equal(viaHeader.status, 200);
    assert.equal(viaHeader.headers.get("x-cocoon-worker"), "w2");
    // Both allowed: both serve.
    const both = await Promise.all(Array.from({ length: 8 }, () => chat(net.client.url, { model: "m", messages: msg, max_coefficient: 3000 })));
    assert.deepEqual([...new Set(both.map((r) => r.headers.get("x-cocoon-worker")))].sort(), ["w1", "w2"]);
    // Nobody that cheap.
    const none = await chat(net.client.url, { model: "m", messages: msg, max_coefficient: 900 });
    assert.equal(none.status, 503);
    const body = (await none.json()) as any;
    assert.match(body.error.message, /No attested worker|max_coefficient 900; the cheapest asks 1000/);
    // A malformed cap is the app's mistake, said so.
    const bad = await chat(net.client.url, { model: "m", messages: msg, max_coefficient: "cheap" });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as any).error.param, "max_coefficient");
  } finally {
    await net.close();
  }
});

test("the proxy enforces the cap itself (unsealed request naming no candidates) and the client's config is a ceiling", async () => {
  const open = await startTestNetwork([{ model: "m", tokens: 2 }, { model: "m", tokens: 2 }], { priceCoefficients: [3000, 1000], seal: false });
  try {
    for (let i = 0; i < 4; i++) {
      const r = await chat(open.client.url, { model: "m", messages: msg, max_coefficient: 1500 });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-cocoon-worker"), "w2");
    }
    const none = await chat(open.client.url, { model: "m", messages: msg, max_coefficient: 999 });
    assert.equal(none.status, 503);
    assert.match(((await none.json()) as any).error.message, /at or under your max_coefficient 999; the cheapest asks 1000/);
  } finally {
    await open.close();
  }
  const capped = await startTestNetwork([{ model: "m", tokens: 2 }, { model: "m", tokens: 2 }], { priceCoefficients: [3000, 1000], maxCoefficient: 1500 });
  try {
    for (let i = 0; i < 4; i++) {
      // The request asks for more than the client's config allows: the config wins.
      const r = await chat(capped.client.url, { model: "m", messages: msg, max_coefficient: 9000 });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get("x-cocoon-worker"), "w2");
    }
  } finally {
    await capped.close();
  }
});
