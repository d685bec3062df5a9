import { test } from "node:test";
import assert from "node:assert/strict";
import { chat, startTestNetwork } from "../helpers/network.js";
import { parseSse } from "../../src/protocol/sse.js";

const msg = (content: string) => [{ role: "user", content }];

test("a worker whose engine fails before answering is retried on another", async () => {
  const net = await startTestNetwork([{ failGenerations: true, model: "m" }, { failGenerations: true, model: "m" }, { model: "m", tokens: 4 }]);
  try {
    for (let i = 0; i < 3; i++) {
      const res = await chat(net.client.url, { model: "m", messages: msg("hi") });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("x-cocoon-worker"), "w3");
    }
    const st = net.proxy.statusJson() as any;
    assert.ok(st.requests.retried >= 1);
    assert.ok(st.peers.workers.find((w: any) => w.id === "w1").failures >= 1);
  } finally {
    await net.close();
  }
});

test("when every worker fails the app gets a 502 that says so", async () => {
  const net = await startTestNetwork([{ failGenerations: true, model: "m" }]);
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg("hi") });
    assert.equal(res.status, 502);
    const body = (await res.json()) as any;
    assert.match(body.error.message, /failed this request/);
  } finally {
    await net.close();
  }
});

test("killing a worker mid-stream ends that stream with an error; the next request is served by another", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 200, tokenDelayMs: 10 }, { model: "m", tokens: 200, tokenDelayMs: 10 }]);
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg("a b c"), stream: true });
    assert.equal(res.status, 200);
    const victim = res.headers.get("x-cocoon-worker");
    const events: string[] = [];
    let killed = false;
    for await (const ev of parseSse(res.body as any)) {
      events.push(ev.data);
      if (events.length === 5 && !killed) {
        killed = true;
        const w = net.workers.find((x) => x.id === victim)!;
        await w.stop();
      }
    }
    const last = JSON.parse(events.at(-1)!);
    assert.ok(last.error, "the stream must end with an error event, not [DONE]");
    assert.match(last.error.message, /failed mid-answer|connection/);
    const next = await chat(net.client.url, { model: "m", messages: msg("again"), max_tokens: 3 });
    assert.equal(next.status, 200);
    assert.notEqual(next.headers.get("x-cocoon-worker"), victim);
  } finally {
    await net.close();
  }
});

test("an app that disconnects cancels the work upstream", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 500, tokenDelayMs: 5 }]);
  try {
    const ac = new AbortController();
    const res = await chat(net.client.url, { model: "m", messages: msg("x"), stream: true }, { signal: ac.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ac.abort();
    for (let i = 0; i < 100 && net.upstreams[0]!.aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(net.upstreams[0]!.aborted, 1, "the engine's stream must be abandoned");
    for (let i = 0; i < 50 && (net.proxy.statusJson() as any).peers.workers[0].active > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((net.proxy.statusJson() as any).peers.workers[0].active, 0);
  } finally {
    await net.close();
  }
});

test("a worker at capacity is skipped; load spreads over workers; beyond every slot, requests wait for one", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 20, tokenDelayMs: 5 }, { model: "m", tokens: 20, tokenDelayMs: 5 }]);
  try {
    const results = await Promise.all(Array.from({ length: 8 }, () => chat(net.client.url, { model: "m", messages: msg("x") })));
    const by = new Map<string, number>();
    for (const r of results) {
      assert.equal(r.status, 200);
      by.set(r.headers.get("x-cocoon-worker")!, (by.get(r.headers.get("x-cocoon-worker")!) ?? 0) + 1);
    }
    assert.equal(by.size, 2, "both workers served");
    const over = await Promise.all(Array.from({ length: 12 }, () => chat(net.client.url, { model: "m", messages: msg("x") })));
    assert.deepEqual(over.map((r) => r.status), Array(12).fill(200), "12 concurrent requests on 8 slots: the last 4 waited in the proxy's queue");
    assert.ok((net.proxy.statusJson().queue as { servedAfterWait: number }).servedAfterWait >= 4);
  } finally {
    await net.close();
  }
});

test("tokens are counted with the tokenizer when the engine reports no usage", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6, omitUsage: true }]);
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg("hello world") });
    const body = (await res.json()) as any;
    assert.ok(body.usage.completion_tokens >= 6, JSON.stringify(body.usage));
    assert.ok(body.usage.prompt_tokens >= 2);
  } finally {
    await net.close();
  }
});
