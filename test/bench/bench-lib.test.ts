// Tests of the benchmark's own machinery: statistics, answer checking, the load generator against the real
// fake upstream (including a failing one), the target verdicts and the hand-written SVG chart.
//   node --import tsx --test bench/test/bench-lib.test.ts
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { fmt, median, percentile, summarize } from "../../bench/lib/stats.js";
import { checkAnswer, countSseEvents, runLoad } from "../../bench/lib/load.js";
import { chartSvg } from "../../bench/lib/svg.js";
import { verdicts, overheadSvg, markdown, targetAnalysis, type BenchResults } from "../../bench/report.js";
import type { OverheadCell } from "../../bench/overhead.js";
import { requestBody } from "../../bench/overhead.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { startFakeStreamEngine } from "../../bench/fake-stream-engine.js";
import { runStreams } from "../../bench/lib/stream-load.js";
import { streamBody, type StreamingCell } from "../../bench/streaming.js";
import { topFrames, trimProfile } from "../../bench/lib/profile-summary.js";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

describe("stats", () => {
  it("percentile and median by nearest rank", () => {
    const xs = [5, 1, 4, 2, 3];
    assert.equal(percentile(xs, 50), 3);
    assert.equal(percentile(xs, 100), 5);
    assert.equal(percentile(xs, 0), 1);
    assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
    assert.equal(median([1, 2, 3, 4]), 2.5);
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 101), /0\.\.100/);
  });
  it("percentile stays within the samples and is monotonic in p", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), { minLength: 1, maxLength: 50 }), fc.integer({ min: 0, max: 99 }), (xs, p) => {
        const a = percentile(xs, p);
        assert.ok(a >= Math.min(...xs) && a <= Math.max(...xs));
        assert.ok(percentile(xs, p + 1) >= a);
      }),
    );
  });
  it("summaries report the spread of rounds and ignore NaN rounds", () => {
    const s = summarize([10, 12, Number.NaN, 8]);
    assert.equal(s.median, 10);
    assert.equal(s.rounds, 3);
    assert.equal(s.spread, 0.4);
    assert.equal(fmt(s, 0), "10 ±20%");
    assert.equal(fmt(summarize([]), 0), "n/a");
  });
});

describe("answer checking", () => {
  it("counts SSE events and requires [DONE]", () => {
    assert.deepEqual(countSseEvents('data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'), { events: 2, done: true });
    assert.deepEqual(countSseEvents('data: {"a":1}\r\n\r\n'), { events: 1, done: false });
    assert.equal(checkAnswer(200, 'data: {"x":1}\n\ndata: [DONE]\n\n', true), 1);
    assert.throws(() => checkAnswer(200, 'data: {"x":1}\n\n', true), /without \[DONE\]/);
    assert.throws(() => checkAnswer(500, "boom", false), /HTTP 500: boom/);
    assert.throws(() => checkAnswer(200, "{}", false), /no choices/);
    assert.throws(() => checkAnswer(200, "<html>", false), /not JSON/);
    assert.equal(checkAnswer(200, '{"choices":[{}]}', false), 0);
  });
});

describe("load generator against the fake upstream", () => {
  it("measures successful requests and streamed chunks, within its bounds", async () => {
    const up = await startFakeUpstream({ model: "fake-model", tokens: 4 });
    try {
      const target = { baseUrl: up.url, path: "/v1/chat/completions" };
      const r = await runLoad(target, { concurrency: 4, maxRequests: 40, maxMs: 5_000, body: requestBody(false, 4), stream: false });
      assert.equal(r.ok, 40);
      assert.equal(r.failed, 0);
      assert.equal(r.latenciesMs.length, 40);
      assert.ok(r.requestsPerSec > 0);
      assert.equal(up.requests, 40);
      const s = await runLoad(target, { concurrency: 2, maxRequests: 10, maxMs: 5_000, body: requestBody(true, 4), stream: true });
      assert.equal(s.ok, 10);
      assert.equal(s.chunks, 10 * 5, "4 token chunks + the final chunk per answer");
      const timed = await runLoad(target, { concurrency: 1, maxRequests: 1_000_000, maxMs: 200, body: requestBody(false, 4), stream: false });
      assert.ok(timed.elapsedMs < 2_000, `stopped by time (${timed.elapsedMs} ms)`);
    } finally {
      await up.close();
    }
  });
  it("counts every failed request with its reason, so a broken peer cannot look fast", async () => {
    const up = await startFakeUpstream({ failGenerations: true });
    try {
      const r = await runLoad({ baseUrl: up.url, path: "/v1/chat/completions" }, { concurrency: 2, maxRequests: 6, maxMs: 5_000, body: requestBody(false, 4), stream: false });
      assert.equal(r.ok, 0);
      assert.equal(r.failed, 6);
      assert.match(r.errors[0], /HTTP 500/);
      assert.equal(r.requestsPerSec, 0);
    } finally {
      await up.close();
    }
  });
});

describe("stream load generator against the fake streaming engine", () => {
  it("holds the streams, times every token and checks every answer", async () => {
    const engine = await startFakeStreamEngine({ model: "fake-model", tokens: 5, stepMs: 5 });
    try {
      const target = { baseUrl: engine.url, path: "/v1/chat/completions" };
      let openAtSteady = -1;
      const r = await runStreams(target, { streams: 10, rampMs: 20, measureMs: 60, body: streamBody(5), expectTokens: 5, onSteady: () => (openAtSteady = engine.open) });
      assert.equal(r.failed, 0, r.errors.join("; "));
      assert.ok(r.ok >= 10, `every slot ran at least one stream (${r.ok})`);
      assert.equal(r.ttftMs.length, r.ok);
      assert.equal(r.gapsMs.length, r.ok * 4, "4 gaps between 5 tokens");
      assert.equal(r.tokens, r.ok * 5);
      assert.equal(r.maxOpen, 10);
      assert.ok(openAtSteady >= 0, "onSteady ran");
      assert.ok(r.gapsMs.every((g) => g >= 0));
      assert.equal(engine.finished, r.ok);
      // An answer short of the expected tokens is a failure, with its reason.
      const short = await runStreams(target, { streams: 2, rampMs: 0, measureMs: 1, body: streamBody(5), expectTokens: 6 });
      assert.equal(short.ok, 0);
      assert.equal(short.failed, 2);
      assert.match(short.errors[0]!, /carried 5 tokens, not 6/);
      // A refusal (this engine only streams) counts as failed with the HTTP status.
      const json = await runStreams(target, { streams: 1, rampMs: 0, measureMs: 1, body: JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "x" }] }), expectTokens: 5 });
      assert.equal(json.failed, 1);
      assert.match(json.errors[0]!, /HTTP 400/);
    } finally {
      await engine.close();
    }
  });
});

const S = (median: number) => ({ median, min: median, max: median, spread: 0, rounds: 1 });
function fakeCell(peer: OverheadCell["peer"], stream: boolean, concurrency: number, rps: number, addedP50: number, ok = 100): OverheadCell {
  return { peer, stream, concurrency, rps: S(rps), p50: S(1), p99: S(2), addedP50: S(addedP50), addedP99: S(addedP50 * 2), chunksPerSec: S(0), cpuMsPerRequest: S(1), ok, failed: ok ? 0 : 32, errors: ok ? [] : ["HTTP 500: x"] };
}
function fakeResults(cocoonRps: number, cocoonAdded: number): BenchResults {
  const overhead: OverheadCell[] = [];
  for (const stream of [false, true])
    for (const c of [1, 32]) {
      overhead.push(fakeCell("direct", stream, c, 2000, 0), fakeCell("nginx", stream, c, 1800, 0.1), fakeCell("cocoon", stream, c, cocoonRps, cocoonAdded));
      overhead.push(fakeCell("portkey", stream, c, 200, 3, stream ? 0 : 100));
    }
  return {
    machine: { date: "2026-11-27", cpu: "test" },
    config: { rounds: "1" },
    peers: (["direct", "portkey", "nginx", "cocoon"] as const).map((name) => ({ name, label: name, baseUrl: "", headers: {}, notes: [], children: [] })),
    skipped: [],
    overhead,
    crypto: { rows: [], perRequest: [{ chunks: 3, us: S(900), note: "measured" }] },
    batches: [
      { requests: 10, offChainVouchers: 10, settlementTxs: 6, txsPer1000: 600, fees: 1n, txsPerRequest: 0 },
      { requests: 1000, offChainVouchers: 1000, settlementTxs: 6, txsPer1000: 6, fees: 1n, txsPerRequest: 0 },
    ],
    errors: [],
    durationS: 1,
  };
}

function fakeStreaming(cocoonTps: number, addedTtft: number, addedGap: number): StreamingCell[] {
  const cellOf = (peer: StreamingCell["peer"], tps: number, ttft: number, gap: number): StreamingCell => ({
    peer,
    streams: 1000,
    tokensPerSec: S(tps),
    ttftP50: S(20),
    ttftP99: S(40),
    gapP50: S(20),
    gapP99: S(25),
    addedTtftP99: S(ttft),
    addedGapP99: S(gap),
    processes: peer === "direct" ? [] : [{ name: `${peer} proxy`, cpuMsPer1000Tokens: S(50), kibPerStream: S(10), rssMiB: S(100) }],
    ok: 100,
    failed: 0,
    errors: [],
  });
  return [cellOf("direct", 50_000, 0, 0), cellOf("cocoon", cocoonTps, addedTtft, addedGap)];
}

describe("target verdicts", () => {
  it("compare the measured numbers with the issue's targets, both ways", () => {
    const find = (vs: ReturnType<typeof verdicts>, prefix: string) => vs.find((v) => v.target.startsWith(prefix))!;
    // Cocoon's CPU per request is 1 ms in fakeCell; portkey's is 1 ms too: met (≤).
    const good = verdicts({ ...fakeResults(2500, 0.5), streaming: fakeStreaming(48_000, 5, 1) });
    assert.equal(find(good, "1a.").met, true);
    assert.equal(find(good, "1b.").met, true);
    assert.equal(find(good, "1c.").met, true);
    assert.equal(find(good, "3.").met, true);
    assert.equal(good.filter((v) => v.target.startsWith("4.")).every((v) => v.met === true), true);
    assert.equal(find(good, "6. per-request crypto").met, true);
    assert.equal(find(good, "6. zero on-chain").met, true);
    const bad = verdicts({ ...fakeResults(150, 9), streaming: fakeStreaming(30_000, 50, 7) });
    assert.equal(find(bad, "1a.").met, false);
    assert.match(find(bad, "1a.").measured, /30000 vs 50000 tokens\/s = 0\.60x/);
    assert.equal(find(bad, "1b.").met, false);
    assert.equal(find(bad, "1c.").met, false);
    assert.equal(find(bad, "4.").met, false);
    const none = verdicts(fakeResults(150, 9));
    assert.equal(find(none, "1a.").met, undefined, "no streaming section: not measured");
  });
  it("the ceiling verdict names the largest count held and why the next was not", () => {
    const step = (streams: number, held: boolean, why: string[] = []) => ({ streams, direct: undefined, cocoon: undefined, cocoonRssMiB: 300, held, why });
    const r = { ...fakeResults(150, 9), ceiling: [step(1000, true), step(2500, false, ["12 of 2500 streams failed (too_many_streams)"])] };
    const v = verdicts(r).find((x) => x.target.startsWith("2."))!;
    assert.equal(v.met, false);
    assert.match(v.measured, /largest held: 1000 streams/);
    assert.match(v.measured, /at 2500: 12 of 2500 streams failed/);
  });
});

describe("report and chart", () => {
  it("writes one bar per measured value, marks failures, escapes text", () => {
    const svg = chartSvg([{ title: "a < b & c", unit: "x", series: [{ name: "s1", color: "#000" }, { name: "s2", color: "#111" }], groups: [{ label: "g", values: [3, null] }] }], "note");
    assert.match(svg, /^<svg /);
    assert.match(svg, /a &lt; b &amp; c/);
    assert.equal((svg.match(/<rect x=/g) ?? []).length, 1 + 2, "one bar + two legend swatches");
    assert.match(svg, />fails</);
    const r = fakeResults(150, 9);
    const chart = overheadSvg(r);
    assert.equal((chart.match(/<rect x="[\d.]+" y="[\d.]+" width/g) ?? []).length, 4 * 4 - 2 + 4 * 3 - 2 + 4 + 3, "bars of both panels + legends");
    const md = markdown(r);
    assert.match(md, /\*\*not met\*\*/);
    assert.match(md, /portkey \| 1 \| fails: HTTP 500/);
  });
});

describe("target analysis", () => {
  it("explains a missed target from the run's own numbers", () => {
    const r = { ...fakeResults(150, 9), streaming: fakeStreaming(30_000, 50, 7) };
    r.crypto!.rows = [
      { op: "sealRequest, 1 recipient, 2048 B body", where: "", us: S(150) },
      { op: "openRequest, 3-recipient envelope", where: "", us: S(100) },
      { op: "signReceipt (Ed25519)", where: "", us: S(50) },
      { op: "verifyReceipt", where: "", us: S(100) },
    ];
    const lines = targetAnalysis(r, 2);
    const streaming = lines.find((l) => l.includes("Streaming throughput"))!;
    // 50 ms of CPU per 1,000 tokens at the engine's 50,000 tokens/s: 2.5 CPU-seconds per second.
    assert.match(streaming, /needs 2\.50 CPU-seconds per second/);
    // The critical path's crypto: 150 + 100 + 50 + 2 x 100 µs = 0.5 ms.
    assert.match(lines.find((l) => l.includes("Latency"))!, /0\.50 ms of cryptography/);
    assert.deepEqual(targetAnalysis(fakeResults(2500, 0.5), 2), [], "nothing to explain when the targets are met");
  });
});

describe("CPU profile summary", () => {
  it("keeps only the load window's samples and the nodes they use, and ranks frames by self time", () => {
    const dir = mkdtempSync(join(tmpdir(), "bench-prof-"));
    try {
      const file = join(dir, "p.cpuprofile");
      const frame = (functionName: string) => ({ functionName, url: "file:///x/dist/a.js", lineNumber: 0 });
      // root -> start (start-up work), root -> load -> hot; one sample per ms, 10 ms in all.
      const nodes = [
        { id: 1, callFrame: frame("(root)"), children: [2, 3] },
        { id: 2, callFrame: frame("startup"), children: [] },
        { id: 3, callFrame: frame("load"), children: [4] },
        { id: 4, callFrame: frame("hot"), children: [] },
      ];
      const samples = [2, 2, 2, 2, 3, 4, 4, 4, 3, 2];
      writeFileSync(file, JSON.stringify({ nodes, samples, timeDeltas: samples.map(() => 1000), startTime: 0, endTime: 10_000 }));
      // Sample i is taken at i + 1 ms. The window from 5.5 ms to 1.5 ms before the end: samples at 5..8 ms.
      trimProfile(file, 5.5, 1.5);
      const p = JSON.parse(readFileSync(file, "utf8")) as { nodes: { id: number }[]; samples: number[] };
      assert.deepEqual(p.samples, [3, 4, 4, 4]);
      assert.deepEqual(p.nodes.map((n) => n.id).sort(), [1, 3, 4], "the start-up node is gone");
      const t = topFrames(file, 5);
      assert.equal(t.frames[0]!.name, "hot");
      assert.equal(t.frames[0]!.selfMs, 3);
      assert.equal(t.idleShare, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
