// Metrics, windowed rates and the live feed: per-node registries, Prometheus text a scraper parses, rates that are
// exact over their windows, and a real in-process network whose nodes count the same request under the same id.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NodeMetrics } from "../../src/observability/metrics.js";
import { History, ratesBetween, type Sample } from "../../src/observability/history.js";
import { createLogger } from "../../src/util/log.js";
import { startTestNetwork, chat } from "../helpers/network.js";

/** Parses the Prometheus text format strictly enough to catch a malformed exposition: name{labels} value. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    out.set(m[1]! + (m[2] ?? ""), Number(m[3]));
  }
  return out;
}
const find = (m: Map<string, number>, name: string, ...labels: string[]) =>
  [...m].filter(([k]) => k.startsWith(name + "{") || k === name).filter(([k]) => labels.every((l) => k.includes(l))).reduce((s, [, v]) => s + v, 0);

test("each node has its own registry: two nodes in one process count apart", async () => {
  const a = new NodeMetrics("worker");
  const b = new NodeMetrics("worker");
  a.observeRequest({ model: "m", outcome: "completed", ttftMs: 20, totalMs: 120, promptTokens: 3, completionTokens: 7 });
  a.observeRequest({ model: "m", outcome: "failed", code: "backend_failed" });
  const ta = parseProm(await a.text());
  const tb = parseProm(await b.text());
  assert.equal(find(ta, "cocoon_requests_total", 'outcome="completed"'), 1);
  assert.equal(find(ta, "cocoon_requests_total", 'outcome="failed"', 'code="backend_failed"'), 1);
  assert.equal(find(ta, "cocoon_tokens_total", 'direction="completion"'), 7);
  assert.equal(find(ta, "cocoon_request_duration_seconds_count"), 1);
  assert.equal(find(ta, "cocoon_time_to_first_token_seconds_sum"), 0.02);
  assert.equal(find(tb, "cocoon_requests_total"), 0, "the other node counted nothing");
});

test("gauges read the node's status object at scrape time (capacity, load, money, attestation)", async () => {
  const m = new NodeMetrics("proxy");
  m.attachStatus(() => ({
    uptimeSeconds: 5,
    peers: { workers: [{ id: "w1", peer: "worker on sim (INSECURE), image ab", insecure: true, capacity: 4, active: 3, enabled: true, latencyMs: 250 }], clients: [] },
    queue: { waiting: { m: 2 } },
    listeners: { workers: { refused: { peer_refused: 4 } }, clients: { refused: {} } },
    payments: { charged: "5000000000", fees: "500000000", redeemed: "0", transactions: { redeemBatches: 2, payoutVouchers: 1 } },
  }));
  const t = parseProm(await m.text());
  assert.equal(find(t, "cocoon_worker_capacity", 'worker="w1"'), 4);
  assert.equal(find(t, "cocoon_worker_active", 'worker="w1"'), 3);
  assert.equal(find(t, "cocoon_worker_latency_seconds", 'worker="w1"'), 0.25);
  assert.equal(find(t, "cocoon_active_streams"), 3);
  assert.equal(find(t, "cocoon_queue_depth", 'model="m"'), 2);
  assert.equal(find(t, "cocoon_attestation_refusals_total", 'rule="peer_refused"'), 4);
  assert.equal(find(t, "cocoon_attestation_peers", 'platform="sim"', 'verdict="insecure"'), 1);
  assert.equal(find(t, "cocoon_payments_nanoton", 'kind="charged"'), 5e9);
  assert.equal(find(t, "cocoon_payments_nanoton", 'kind="fees"'), 5e8);
  assert.equal(find(t, "cocoon_settlement_total", 'kind="redeem_batch"'), 2);
});

test("windowed rates are exact over 1 min, 5 min and 1 h, and cover less while the node is young", () => {
  const m = new NodeMetrics("worker");
  let s: Record<string, unknown> = {};
  const h = new History("worker", m, () => s);
  const t0 = 1_000_000_000;
  // 2 requests and 100 completion tokens per 10 s for an hour; money grows 1 TON per 10 minutes.
  for (let i = 0; i <= 360; i++) {
    s = { requests: { requests: 2 * i, completed: 2 * i, failed: 0 }, tokens: { prompt: 0, completion: 100 * i }, payments: { earned: String(Math.round((i / 60) * 1e9)) } };
    h.take(t0 + i * 10_000);
  }
  const r = h.rates() as Record<string, { seconds: number; requestsPerSecond: number; completionTokensPerSecond: number; nanoPerHour: number }>;
  assert.equal(r["1m"]!.seconds, 60);
  assert.equal(r["1m"]!.requestsPerSecond, 0.2);
  assert.equal(r["5m"]!.completionTokensPerSecond, 10);
  assert.equal(r["1h"]!.seconds, 3600);
  assert.equal(r["1h"]!.nanoPerHour, 6e9);
  const young = new History("worker", m, () => ({ requests: { requests: 0 } }));
  young.take(t0);
  assert.equal((young.rates() as Record<string, { seconds: number }>)["1h"]!.seconds, 0, "one sample: no span, no invented rate");
});

test("mean latency of a window comes from the requests completed in it only", () => {
  const a: Sample = { t: 0, requests: 0, completed: 0, failed: 0, promptTokens: 0, completionTokens: 0, nano: 0, totalMsSum: 1000, totalCount: 1, ttftMsSum: 0, ttftCount: 0 };
  const b: Sample = { ...a, t: 60_000, totalMsSum: 1600, totalCount: 4, ttftMsSum: 90, ttftCount: 3 };
  const r = ratesBetween(a, b, "earned");
  assert.equal(r.meanLatencyMs, 200);
  assert.equal(r.meanTtftMs, 30);
  assert.equal(ratesBetween(b, b, "earned").meanLatencyMs, undefined);
});

test("a real network: one request is counted by client, proxy and worker under one id, and logged with it", async () => {
  const lines: string[] = [];
  const prev = [process.env.COCOON_LOG, process.env.COCOON_LOG_FORMAT];
  process.env.COCOON_LOG = "debug";
  process.env.COCOON_LOG_FORMAT = "json";
  const net = await startTestNetwork([{ tokens: 5 }], { log: (name) => createLogger(name, (l) => lines.push(l)), workerStatus: true });
  try {
    const res = await chat(net.client.url, { model: "fake-model", messages: [{ role: "user", content: "hi" }], max_tokens: 5 });
    assert.equal(res.status, 200);
    const id = res.headers.get("x-request-id")!;
    assert.match(id, /^chatcmpl-/);
    await res.json();
    // The same id in the logs of all three roles, as a structured field.
    const withId = lines.map((l) => JSON.parse(l) as { name: string; requestId?: string }).filter((l) => l.requestId === id);
    assert.deepEqual([...new Set(withId.map((l) => l.name))].sort(), ["client", "proxy", "w1"]);
    // /metrics on the proxy's and the worker's status port and on the client's API port.
    const proxyBase = net.proxy.statusUrl!.replace(/\/status$/, "");
    const workerBase = net.workers[0]!.statusUrl!.replace(/\/status$/, "");
    for (const base of [proxyBase, workerBase, net.client.url]) {
      const r = await fetch(`${base}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get("content-type") ?? "", /text\/plain/);
      const t = parseProm(await r.text());
      assert.equal(find(t, "cocoon_requests_total", 'model="fake-model"', 'outcome="completed"'), 1, base);
      assert.equal(find(t, "cocoon_tokens_total", 'direction="completion"'), 5, base);
    }
    // /status carries windowed rates and the recent request with its worker and evidence (client).
    const st = (await (await fetch(`${net.client.url}/status`)).json()) as { rates: Record<string, unknown>; recentRequests: { requestId: string; worker: string; evidence: string }[] };
    assert.ok(st.rates["1m"] && st.rates["5m"] && st.rates["1h"]);
    assert.equal(st.recentRequests[0]?.requestId, id);
    assert.equal(st.recentRequests[0]?.worker, "w1");
    assert.match(st.recentRequests[0]!.evidence, /sim.*INSECURE.*receipt verified/);
    // The live feed starts with the history and the status.
    const ac = new AbortController();
    const ev = await fetch(`${proxyBase}/events`, { signal: ac.signal });
    assert.match(ev.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = ev.body!.getReader();
    let got = "";
    while (!got.includes("\n\n")) got += new TextDecoder().decode((await reader.read()).value);
    ac.abort();
    assert.match(got, /^event: history\ndata: \{"samples":\[/);
    // The dashboard is one self-contained page: nothing loaded from elsewhere.
    const page = await fetch(`${workerBase}/`);
    const html = await page.text();
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    assert.doesNotMatch(html, /(src|href)="https?:/);
  } finally {
    await net.close();
    process.env.COCOON_LOG = prev[0];
    process.env.COCOON_LOG_FORMAT = prev[1];
    if (prev[0] === undefined) delete process.env.COCOON_LOG;
    if (prev[1] === undefined) delete process.env.COCOON_LOG_FORMAT;
  }
});
