// A malicious proxy, or a worker that over-reports usage, is caught.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat, startTestNetwork } from "../helpers/network.js";
import { parseSse } from "../../src/protocol/sse.js";

const msg = [{ role: "user", content: "one two three" }];

test("a proxy that flips a bit in a sealed answer chunk is detected", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6 }], {
    tamper: { chunk: (c, i) => (i === 0 ? Buffer.from(c.map((b, k) => (k === c.length - 20 ? b ^ 1 : b))) : c) },
  });
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg });
    assert.equal(res.status, 502);
    assert.match(((await res.json()) as any).error.message, /integrity check|tampered/);
    const s = await chat(net.client.url, { model: "m", messages: msg, stream: true });
    const events: string[] = [];
    for await (const ev of parseSse(s.body as any)) events.push(ev.data);
    assert.match(JSON.parse(events.at(-1)!).error.message, /tampered/);
  } finally {
    await net.close();
  }
});

test("a proxy that drops a sealed chunk is detected", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6 }], { tamper: { chunk: (c, i) => (i === 1 ? Buffer.alloc(0) : c) } });
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg });
    assert.equal(res.status, 502);
  } finally {
    await net.close();
  }
});

test("a proxy that alters the signed receipt gets it refused by the client", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6 }], {
    tamper: {
      trailer: (t) => {
        const r = t.receipt as { receipt: { completionTokens: number } };
        return { ...t, receipt: { ...r, receipt: { ...r.receipt, completionTokens: r.receipt.completionTokens + 1 } } };
      },
    },
  });
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg });
    assert.equal(res.status, 200, "the app still gets its answer");
    assert.match(res.headers.get("x-cocoon-receipt") ?? "", /^refused: .*signature/);
    const st = (await (await fetch(`${net.client.url}/status`)).json()) as any;
    assert.equal(st.sealing.receipts.refused, 1);
  } finally {
    await net.close();
  }
});

test("a worker that over-reports tokens is refused by the proxy and not billed", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6, inflateUsage: 50 }]);
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg, max_tokens: 100 });
    assert.equal(res.status, 502);
    assert.match(((await res.json()) as any).error.message, /usage receipt.*not billed/);
    const ps = net.proxy.statusJson() as any;
    assert.equal(ps.receipts.refused, 1);
    assert.match(ps.peers.workers[0].lastFailure, /completion|tokens/i);
  } finally {
    await net.close();
  }
});
