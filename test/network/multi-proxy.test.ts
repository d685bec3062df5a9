// Several proxies: the client links to those its directory lists (attested, each bound to its registered contract),
// sends each request through the healthiest, moves a request that had not started to another proxy when one dies or
// refuses, uses a proxy again once it is back; workers serve every proxy they link to within one capacity.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat } from "../helpers/network.js";
import { proxyKey, startMultiProxyNetwork } from "../helpers/multi-proxy.js";
import { parseSse } from "../../src/protocol/sse.js";

const msg = (content: string) => [{ role: "user", content }];
const until = async (what: string, cond: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

test("requests go through both proxies; one stopped, every request still succeeds; back, it is used again", async () => {
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 3 }, { model: "m", tokens: 3 }]);
  try {
    const st = net.client.statusJson() as any;
    assert.equal(st.peers.length, 2);
    assert.ok(st.peers.every((p: any) => p.connected), JSON.stringify(st.peers));
    // Models are listed once over both proxies; each worker is linked to both, so it is counted once, not per proxy.
    const models = (await (await fetch(`${net.client.url}/v1/models`)).json()) as any;
    assert.deepEqual(models.data.map((m: any) => [m.id, m.workers]), [["m", 2]]);
    // Concurrent requests spread: the busier proxy scores worse, so both serve some.
    const first = await Promise.all(Array.from({ length: 8 }, () => chat(net.client.url, { model: "m", messages: msg("a b") })));
    assert.ok(first.every((r) => r.status === 200));
    const via = new Set(first.map((r) => r.headers.get("x-cocoon-proxy")));
    assert.deepEqual([...via].sort(), ["proxy-contract-1", "proxy-contract-2"]);

    // Proxy 1 goes away while requests keep coming: none of them fails (not one had started on it).
    const load = Array.from({ length: 12 }, (_, i) => new Promise((r) => setTimeout(r, i * 15)).then(() => chat(net.client.url, { model: "m", messages: msg("c d") })));
    await new Promise((r) => setTimeout(r, 40));
    await net.proxies[0]!.stop();
    const results = await Promise.all(load);
    assert.deepEqual(results.map((r) => r.status), results.map(() => 200), "no request was lost");
    const after = await chat(net.client.url, { model: "m", messages: msg("e") });
    assert.equal(after.status, 200);
    assert.equal(after.headers.get("x-cocoon-proxy"), "proxy-contract-2");

    // It comes back on the same ports: the link redials, and it serves again.
    await net.restartProxy(0);
    await until("proxy 1 to be linked again with workers", () => net.client.proxies.all.find((r) => r.target.key === proxyKey(0))!.link.connected && net.proxies[0]!.pool.size === 2, 15_000);
    const again = await Promise.all(Array.from({ length: 8 }, () => chat(net.client.url, { model: "m", messages: msg("f g") })));
    assert.ok(again.every((r) => r.status === 200));
    assert.ok(again.some((r) => r.headers.get("x-cocoon-proxy") === "proxy-contract-1"), "the restarted proxy is used again");
  } finally {
    await net.close();
  }
});

test("a stream in flight on a proxy that dies ends with a clean error; the next request goes through the other", async () => {
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 200, tokenDelayMs: 10 }]);
  try {
    const res = await chat(net.client.url, { model: "m", messages: msg("a b c"), stream: true });
    assert.equal(res.status, 200);
    const victim = res.headers.get("x-cocoon-proxy")!;
    const events: string[] = [];
    for await (const ev of parseSse(res.body as any)) {
      events.push(ev.data);
      if (events.length === 3) await net.proxies[victim === "proxy-contract-1" ? 0 : 1]!.stop();
    }
    const last = JSON.parse(events.at(-1)!);
    assert.ok(last.error, "the stream ends with an error event, not [DONE]");
    const next = await chat(net.client.url, { model: "m", messages: msg("again"), max_tokens: 3 });
    assert.equal(next.status, 200);
    assert.notEqual(next.headers.get("x-cocoon-proxy"), victim);
  } finally {
    await net.close();
  }
});

test("a proxy whose attestation names another contract than its registration is refused; the other serves", async () => {
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 2 }]);
  try {
    // The directory now says proxy 2's endpoint belongs to a third contract: proxy 2's attestation names its own.
    const impostor = { ...net.targets[1]!, key: proxyKey(7), contract: "proxy-contract-8" };
    net.directory.set([net.targets[0]!, impostor]);
    await until("the impostor link to be refused", () => !!net.client.proxies.all.find((r) => r.target.key === proxyKey(7))?.link.lastError);
    const r = net.client.proxies.all.find((x) => x.target.key === proxyKey(7))!;
    assert.equal(r.link.connected, false);
    assert.match(r.link.lastError!, /registered on the root as proxy-contract-8, but its attestation names/);
    for (let i = 0; i < 4; i++) {
      const res = await chat(net.client.url, { model: "m", messages: msg("x") });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cocoon-proxy"), "proxy-contract-1");
    }
    // Removed from the directory: unlinked.
    net.directory.set([net.targets[0]!]);
    assert.deepEqual(net.client.proxies.all.map((x) => x.target.key), [proxyKey(0)]);
  } finally {
    await net.close();
  }
});

test("a proxy with no worker for the model refuses before starting: the request moves to the other without the app noticing", async () => {
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 2 }]);
  try {
    // The only worker leaves proxy 1 (it keeps serving proxy 2).
    net.workers[0]!.setProxies([{ host: "127.0.0.1", port: net.proxies[1]!.workerPort, key: proxyKey(1) }]);
    await until("proxy 1 to lose its worker", () => net.proxies[0]!.pool.size === 0);
    for (let i = 0; i < 6; i++) {
      const res = await chat(net.client.url, { model: "m", messages: msg("y") });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("x-cocoon-proxy"), "proxy-contract-2");
    }
  } finally {
    await net.close();
  }
});

test("a worker linked to two proxies never runs more than its one capacity", async () => {
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 20, tokenDelayMs: 5 }], { capacity: 2 });
  try {
    const w = net.workers[0]!;
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, (w.statusJson() as any).activeRequests)), 2);
    const results = await Promise.all(Array.from({ length: 10 }, () => chat(net.client.url, { model: "m", messages: msg("z") })));
    clearInterval(sampler);
    await Promise.all(results.map((r) => r.text()));
    assert.ok(results.filter((r) => r.status === 200).length >= 2);
    assert.ok(peak <= 2, `peak ${peak} active requests on a worker of capacity 2`);
    const st = w.statusJson() as any;
    assert.equal(st.peers.filter((p: any) => p.connected).length, 2);
  } finally {
    await net.close();
  }
});

test("a worker's capacity is shared by its proxies: a burst through both waits for slots instead of failing", async () => {
  // One worker with 2 slots, linked to two proxies that each believe it has 2 free: under a burst it refuses some as
  // at capacity; those are busy, not failed — they wait in the proxy's queue and all succeed.
  const net = await startMultiProxyNetwork(2, [{ model: "m", tokens: 3, tokenDelayMs: 20 }], { capacity: 2 });
  try {
    const res = await Promise.all(Array.from({ length: 16 }, () => chat(net.client.url, { model: "m", messages: msg("x y") })));
    await Promise.all(res.map((r) => r.clone().text()));
    const statuses = res.map((r) => r.status);
    assert.deepEqual(statuses, statuses.map(() => 200), JSON.stringify(await Promise.all(res.filter((r) => r.status !== 200).map((r) => r.text()))));
    assert.equal(new Set(res.map((r) => r.headers.get("x-cocoon-proxy"))).size, 2, "both proxies served some");
  } finally {
    await net.close();
  }
});
