// With payments on, a proxy takes requests only while its payer can pay: a proxy whose channel is still being opened
// (a real ChannelPayer with no channel yet) is skipped, and a channel that runs dry (402 insufficient_funds) moves the
// request to another proxy instead of failing it; with no proxy able to pay, the app gets a clear error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat } from "../helpers/network.js";
import { proxyKey, startMultiProxyNetwork } from "../helpers/multi-proxy.js";
import { ChannelPayer } from "../../src/payments/channel-payer.js";
import { ApiError } from "../../src/protocol/openai.js";
import type { AnswerCost, Payer } from "../../src/client/payer.js";
import type { ClientPayer } from "../../src/payments/client-payer.js";

const msg = [{ role: "user", content: "a b" }];

/** Stands in for an open channel's payer (ClientPayer needs a chain): it runs dry when told, and counts answers paid. */
class StandInPayer implements Payer {
  dry = false;
  paid = 0;
  async onConnected(): Promise<void> {}
  async close(): Promise<void> {}
  track(): void {}
  abandon(): void {}
  async reconcile(): Promise<void> {}
  status(): Record<string, unknown> {
    return { standIn: true, paid: this.paid };
  }
  async beforeRequest(): Promise<Record<string, unknown> | undefined> {
    if (this.dry) throw new ApiError(402, "Insufficient funds: the stand-in channel is dry.", "insufficient_quota", "insufficient_funds");
    return undefined;
  }
  async afterAnswer(_a: AnswerCost): Promise<void> {
    this.paid++;
  }
}

test("a proxy whose channel is being opened takes no request; a dry channel moves the request to another proxy", async () => {
  const opened = new StandInPayer();
  // Proxy 1: a real ChannelPayer; until its channel is attached, it says the channel is being opened.
  const p1 = new ChannelPayer("proxy-contract-1", () => "its payment channel is being opened (deposit 1 TON)");
  const p2 = new StandInPayer();
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 2 }], { payerFor: (t) => (t.key === proxyKey(0) ? p1 : p2) });
  try {
    const ask = async () => {
      const r = await chat(net.client.url, { model: "m", messages: msg });
      return { status: r.status, proxy: r.headers.get("x-cocoon-proxy"), body: (await r.json()) as any };
    };
    const via = async (n: number) => {
      const rs = await Promise.all(Array.from({ length: n }, ask));
      for (const r of rs) assert.equal(r.status, 200, JSON.stringify(r.body));
      return rs.map((r) => r.proxy);
    };
    // 1. Proxy 1's channel is being opened: every request goes through proxy 2.
    assert.deepEqual(new Set(await via(8)), new Set(["proxy-contract-2"]));
    assert.match(String((net.client.statusJson() as any).paymentsByProxy["proxy-contract-1"].unavailable), /being opened/);

    // 2. Proxy 2 runs dry too: nothing can pay; the app is told why (no wait for the chain).
    p2.dry = true;
    const none = await ask();
    assert.equal(none.status, 402, JSON.stringify(none.body));
    assert.equal(none.body.error.code, "insufficient_funds");

    // 3. Proxy 1's channel opens (and is the only one with money): the dry proxy 2 passes requests on to it.
    await p1.attach(opened as unknown as ClientPayer);
    assert.deepEqual(new Set(await via(6)), new Set(["proxy-contract-1"]));
    assert.equal(opened.paid, 6);
    assert.equal(p2.paid, 8, "proxy 2 paid only the answers it served");

    // 4. Proxy 2 is funded again: both take requests.
    p2.dry = false;
    const both = new Set<string | null>();
    for (let i = 0; i < 10 && both.size < 2; i++) for (const p of await via(4)) both.add(p);
    assert.deepEqual([...both].sort(), ["proxy-contract-1", "proxy-contract-2"]);
  } finally {
    await net.close();
  }
});
