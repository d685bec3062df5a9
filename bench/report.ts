// Turns the measurements into BENCHMARKS.md text, the target verdicts and the overhead chart.
import os from "node:os";
import { fromNano } from "@ton/core";
import type { OverheadCell } from "./overhead.js";
import type { CryptoResults } from "./crypto-costs.js";
import type { BatchResult, GasRow } from "./chain-costs.js";
import type { EmbeddedResult } from "./embedded.js";
import type { Peer, Skipped } from "./lib/peers.js";
import { fmt, num } from "./lib/stats.js";
import { chartSvg, type BarChart } from "./lib/svg.js";

/** The issue's targets. */
export const TARGET_RPS_VS_PORTKEY = 10;
export const TARGET_P50_VS_NGINX = 2;
export const TARGET_REQUEST_CRYPTO_US = 1000;
export const TARGET_TXS_PER_REQUEST = 0;
/** Concurrency of the throughput target. */
export const TARGET_CONCURRENCY = 32;

export interface BenchResults {
  machine: Record<string, string>;
  config: Record<string, string>;
  peers: Peer[];
  skipped: Skipped[];
  overhead?: OverheadCell[];
  crypto?: CryptoResults;
  gas?: GasRow[];
  batches?: BatchResult[];
  embedded?: EmbeddedResult | { skipped: string };
  errors: string[];
  durationS: number;
}

export interface Verdict {
  target: string;
  measured: string;
  met: boolean | undefined;
}

const cell = (r: BenchResults, peer: string, stream: boolean, c: number) => r.overhead?.find((x) => x.peer === peer && x.stream === stream && x.concurrency === c);
const alive = (x: OverheadCell | undefined) => (x && x.ok > 0 ? x : undefined);

/**
 * Bounds computed from this run's own numbers: the CPU a request may use at the throughput target, and the critical
 * path's cryptography against the latency target. Empty when the needed sections did not run.
 */
export function targetAnalysis(r: BenchResults, cores = Number(r.machine.cores ?? 0) || os.cpus().length): string[] {
  const out: string[] = [];
  const pk = alive(cell(r, "portkey", false, TARGET_CONCURRENCY));
  const direct = alive(cell(r, "direct", false, TARGET_CONCURRENCY));
  const co = alive(cell(r, "cocoon", false, TARGET_CONCURRENCY));
  const crypto = r.crypto?.perRequest[0];
  if (pk && direct && co && crypto) {
    const need = TARGET_RPS_VS_PORTKEY * pk.rps.median;
    const budgetMs = (cores * 1000) / need;
    out.push(
      `- **Throughput.** ${TARGET_RPS_VS_PORTKEY}x portkey is ${num(need, 0)} req/s. The fake upstream alone, called directly, served ` +
        `${num(direct.rps.median, 0)} req/s here (the load generator shares the ${cores} cores). At ${num(need, 0)} req/s the ${cores} cores ` +
        `leave at most ${num(budgetMs, 3)} ms of CPU per request for client, proxy and worker together, and for the load generator and ` +
        `upstream; the cryptography that the issue itself asks for (sealing, opening, the signed receipt checked by proxy and client, ` +
        `the voucher) costs ${num(crypto.us.median / 1000, 3)} ms per request on this CPU before any byte is parsed or sent. ` +
        `Cocoon used ${num(co.cpuMsPerRequest.median, 2)} ms per request in all; its ceiling here is about ${num((cores * 1000) / co.cpuMsPerRequest.median, 0)} req/s.`,
    );
  }
  const n1 = alive(cell(r, "nginx", false, 1));
  const c1 = alive(cell(r, "cocoon", false, 1));
  const row = (prefix: string) => r.crypto?.rows.find((x) => x.op.startsWith(prefix))?.us.median;
  const seal1 = row("sealRequest, 1 recipient");
  const open = row("openRequest");
  const sign = row("signReceipt");
  const verify = row("verifyReceipt");
  if (n1 && c1 && seal1 !== undefined && open !== undefined && sign !== undefined && verify !== undefined) {
    const budgetMs = TARGET_P50_VS_NGINX * Math.max(n1.addedP50.median, 0);
    const pathMs = (seal1 + open + sign + 2 * verify) / 1000;
    out.push(
      `- **Latency.** ${TARGET_P50_VS_NGINX}x nginx's added p50 is ${num(budgetMs, 2)} ms. Before an answer reaches the app, one request ` +
        `needs, one after another: sealing (${num(seal1 / 1000, 3)} ms), opening (${num(open / 1000, 3)} ms), signing the receipt ` +
        `(${num(sign / 1000, 3)} ms) and verifying it at the proxy and at the client (2 × ${num(verify / 1000, 3)} ms): ${num(pathMs, 2)} ms ` +
        `of cryptography alone, besides two TLS hops and two more HTTP hops that nginx does not make. Cocoon added ${num(c1.addedP50.median, 2)} ms.`,
    );
  }
  return out;
}

export function verdicts(r: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  for (const stream of [false, true]) {
    const kind = stream ? "streaming" : "non-streaming";
    const co = alive(cell(r, "cocoon", stream, TARGET_CONCURRENCY));
    const pk = alive(cell(r, "portkey", stream, TARGET_CONCURRENCY));
    const pkRaw = cell(r, "portkey", stream, TARGET_CONCURRENCY);
    out.push({
      target: `Cocoon ≥ ${TARGET_RPS_VS_PORTKEY}x portkey's requests/s at concurrency ${TARGET_CONCURRENCY} (${kind})`,
      measured: co && pk ? `${num(co.rps.median, 0)} vs ${num(pk.rps.median, 0)} req/s = ${num(co.rps.median / pk.rps.median, 2)}x` : pkRaw && !pk ? `portkey fails every ${kind} request (${pkRaw.errors[0] ?? "?"}); Cocoon ${num(co?.rps.median, 0)} req/s` : "not measured",
      met: co && pk ? co.rps.median >= TARGET_RPS_VS_PORTKEY * pk.rps.median : undefined,
    });
    const c1 = alive(cell(r, "cocoon", stream, 1));
    const n1 = alive(cell(r, "nginx", stream, 1));
    out.push({
      target: `Cocoon's added p50 latency ≤ ${TARGET_P50_VS_NGINX}x nginx's (concurrency 1, ${kind})`,
      // nginx's added latency is below the timer's noise on loopback (it can even come out negative): say so
      // rather than print a meaningless ratio.
      measured: c1 && n1
        ? n1.addedP50.median > NOISE_FLOOR_MS
          ? `${num(c1.addedP50.median, 2)} ms vs ${num(n1.addedP50.median, 2)} ms = ${num(c1.addedP50.median / n1.addedP50.median, 1)}x`
          : `${num(c1.addedP50.median, 2)} ms vs ${num(n1.addedP50.median, 2)} ms (nginx adds less than the ${NOISE_FLOOR_MS} ms measurement noise)`
        : "not measured (nginx absent or failing)",
      met: c1 && n1 ? c1.addedP50.median <= TARGET_P50_VS_NGINX * Math.max(n1.addedP50.median, 0) : undefined,
    });
  }
  if (r.crypto) {
    for (const p of r.crypto.perRequest) {
      const us = p.us.median;
      out.push({ target: `per-request crypto < ${TARGET_REQUEST_CRYPTO_US / 1000} ms (all nodes together, ${p.chunks} chunks: ${p.note})`, measured: `${num(us / 1000, 3)} ms`, met: us < TARGET_REQUEST_CRYPTO_US });
    }
  }
  if (r.batches?.length) {
    const perReq = Math.max(...r.batches.map((b) => b.txsPerRequest));
    const settle = new Set(r.batches.map((b) => b.settlementTxs));
    out.push({
      target: "zero on-chain transactions per request; settlement a constant independent of request count",
      measured: `${perReq} per request; settlement ${[...settle].join("/")} transactions for ${r.batches.map((b) => b.requests).join(", ")} requests`,
      met: perReq === TARGET_TXS_PER_REQUEST && settle.size === 1,
    });
  }
  return out;
}

const mark = (m: boolean | undefined) => (m === undefined ? "not measured" : m ? "**met**" : "**not met**");

export function markdown(r: BenchResults): string {
  const L: string[] = [];
  L.push("# Benchmarks", "");
  L.push("Generated by `npm run bench` (bench/run.ts). Do not edit by hand: rerun it. Every number is measured in that run on this");
  L.push("machine, loopback only; each is the median of several rounds, with ±half the spread (max−min)/median of the rounds.");
  L.push("The machine is shared (2 cores); treat differences under ~20% as noise.", "");
  L.push("## Machine and versions", "", "| | |", "|---|---|");
  for (const [k, v] of Object.entries(r.machine)) L.push(`| ${k} | ${v} |`);
  for (const [k, v] of Object.entries(r.config)) L.push(`| ${k} | ${v} |`);
  L.push(`| run time | ${r.durationS.toFixed(0)} s |`, "");

  L.push("## Targets", "", "| target | measured | verdict |", "|---|---|---|");
  for (const v of verdicts(r)) L.push(`| ${v.target} | ${v.measured} | ${mark(v.met)} |`);
  L.push("");
  const why = targetAnalysis(r);
  if (why.length) L.push("### What the measurements say about the first two targets", "", ...why, "");

  if (r.overhead) {
    L.push("## 1. Gateway overhead", "");
    L.push("Peers, all in front of the same fake upstream (`src/dev/fake-upstream.ts`, a stand-in that answers instantly):", "");
    for (const p of r.peers) L.push(`- **${p.name}** — ${p.label}: ${p.notes.join("; ")}`);
    for (const s of r.skipped) L.push(`- **${s.name}** — skipped: ${s.reason.split("\n")[0]}`);
    L.push("");
    L.push("*added* = the peer's latency percentile minus the direct call's in the same round. Latency is send → last byte.");
    L.push("*peer CPU ms/request* = user+system CPU of the peer's own processes (for Cocoon: client + proxy + worker; for nginx:");
    L.push("master + worker) during the run, per successful request, from /proc. With 2 cores, 2000 / this is a ceiling on requests/s.", "");
    for (const stream of [false, true]) {
      L.push(`### ${stream ? "Streaming (SSE)" : "Non-streaming"}`, "");
      L.push(`| peer | concurrency | requests/s | ratio to direct | p50 ms | p99 ms | added p50 ms | added p99 ms |${stream ? " chunks/s |" : ""} peer CPU ms/request | failed |`);
      L.push(`|---|---:|---:|---:|---:|---:|---:|---:|${stream ? "---:|" : ""}---:|---:|`);
      for (const c of r.overhead.filter((x) => x.stream === stream)) {
        const d = cell(r, "direct", stream, c.concurrency);
        if (c.ok === 0) {
          L.push(`| ${c.peer} | ${c.concurrency} | fails: ${c.errors[0]?.replace(/\|/g, "/").slice(0, 90) ?? "?"} | | | | | |${stream ? " |" : ""} | all |`);
          continue;
        }
        const ratio = d && d.rps.median ? c.rps.median / d.rps.median : Number.NaN;
        const isDirect = c.peer === "direct";
        L.push(
          `| ${c.peer} | ${c.concurrency} | ${fmt(c.rps, 0)} | ${num(ratio, 2)} | ${fmt(c.p50, 2)} | ${fmt(c.p99, 2)} | ${isDirect ? "—" : fmt(c.addedP50, 2)} | ${isDirect ? "—" : fmt(c.addedP99, 2)} |${stream ? ` ${fmt(c.chunksPerSec, 0)} |` : ""} ${isDirect ? "—" : fmt(c.cpuMsPerRequest, 2)} | ${c.failed} |`,
        );
      }
      L.push("");
    }
    const failing = r.overhead.filter((c) => c.failed > 0);
    if (failing.length) {
      L.push("Failed requests (counted, never timed):", "");
      for (const c of failing) L.push(`- ${c.peer}, ${c.stream ? "streaming" : "non-streaming"}, concurrency ${c.concurrency}: ${c.failed} failed; ${c.errors.map((e) => `\`${e.slice(0, 200)}\``).join("; ")}`);
      L.push("");
    }
    L.push("![overhead chart](docs/bench-overhead.svg)", "");
  }

  if (r.crypto) {
    L.push("## 2. Cryptography costs", "");
    L.push("Attestation on the real vectors in `test/fixtures/vectors/` (Intel TDX v4 quote with collateral, AMD SEV-SNP Milan report + VCEK);");
    L.push("*cached* is what `verifyPeerCertificate` does when the evidence hash is in its `EvidenceCache`. The RA-TLS handshake is a real");
    L.push("mutual TLS 1.3 handshake on loopback between two sim identities, each end verifying the other's certificate.", "");
    L.push("| operation | who pays, how often | µs (median) | spread |", "|---|---|---:|---:|");
    for (const row of r.crypto.rows) L.push(`| ${row.op} | ${row.where} | ${num(row.us.median, 1)} | ±${Math.round(row.us.spread * 50)}% |`);
    for (const p of r.crypto.perRequest) {
      L.push(`| **one whole request, all nodes: seal (3 candidates) → open → ${p.chunks} chunks sealed+opened → receipt signed, verified by proxy and client → voucher signed (and verified)** (${p.note}) | client + worker + proxy | **${num(p.us.median, 1)}** | ±${Math.round(p.us.spread * 50)}% |`);
    }
    L.push("", "The proxy verifies piggybacked vouchers lazily (when admission needs one, otherwise at most every 100 ms per channel);");
    L.push("the first whole-request row counts that verification at the rate the proxy really did it in section 1, the conservative");
    L.push("row on every request.", "");
  }

  if (r.gas || r.batches) {
    L.push("## 3. Chain costs", "");
    if (r.gas) {
      L.push("Gas and fees in `@ton/sandbox` (mainnet configuration), from `bench/gas.ts`:", "");
      L.push("| operation | contract | gas | contract tx fee (TON) | operation fees (TON) |", "|---|---|---:|---:|---:|");
      for (const g of r.gas) L.push(`| ${g.op} | ${g.contract} | ${g.gas} | ${fromNano(g.fee)} | ${fromNano(g.total)} |`);
      L.push("");
    }
    if (r.batches) {
      L.push("On-chain transactions per batch of requests: each request is paid by a client-signed cumulative voucher (signed and");
      L.push("verified off chain); the batch is settled by one redeem (client channel → proxy) and one payout (proxy → worker).", "");
      L.push("| requests | vouchers off chain | on-chain txs during requests | settlement txs | txs per 1,000 requests | settlement fees (TON) |", "|---:|---:|---:|---:|---:|---:|");
      for (const b of r.batches) L.push(`| ${b.requests} | ${b.offChainVouchers} | ${b.txsPerRequest * b.requests} | ${b.settlementTxs} | ${num(b.txsPer1000, 1)} | ${fromNano(b.fees)} |`);
      L.push("");
    }
  }

  if (r.embedded) {
    L.push("## 4. Embedded model", "");
    if ("skipped" in r.embedded) L.push(`Skipped: ${r.embedded.skipped}`, "");
    else {
      const e = r.embedded;
      L.push(`Model \`${e.model}\`, prompt "And God said", max_tokens ${e.maxTokens}, greedy, 1 sequence; tokens/s = completion tokens / wall time of the whole answer.`, "");
      L.push("| path | tokens/answer | tokens/s | ratio |", "|---|---:|---:|---:|");
      L.push(`| engine called directly (EmbeddedBackend in-process) | ${e.tokens.direct} | ${fmt(e.direct, 0)} | 1.00 |`);
      L.push(`| whole network: client → proxy → worker, sealed, streamed | ${e.tokens.network} | ${fmt(e.network, 0)} | ${num(e.network.median / e.direct.median, 2)} |`);
      L.push("", `First streamed chunk through the network after ${fmt(e.firstChunkMs, 1)} ms.`, "");
    }
  }
  if (r.errors.length) {
    L.push("## Errors during the run", "");
    for (const e of r.errors) L.push(`- ${e.split("\n")[0]}`);
    L.push("");
  }
  L.push("## Rerun", "", "`npm run bench` (about 5 minutes). Options: `-- --rounds N`, `-- --model-file FILE.gguf`, `-- --skip overhead,crypto,chain,embedded`.", "");
  return L.join("\n");
}

/** Added latencies below this are within the jitter of loopback timing on this machine. */
const NOISE_FLOOR_MS = 0.05;

const COLORS: Record<string, string> = { direct: "#888888", nginx: "#2a9d8f", portkey: "#e76f51", cocoon: "#264653" };

export function overheadSvg(r: BenchResults): string {
  const peers = r.peers.map((p) => p.name);
  const series = peers.map((p) => ({ name: p, color: COLORS[p] ?? "#999" }));
  const scen = [false, true].flatMap((stream) => [1, TARGET_CONCURRENCY].map((c) => ({ stream, c, label: `${stream ? "stream" : "json"}, c=${c}` })));
  const value = (p: string, stream: boolean, c: number, f: (x: OverheadCell) => number) => {
    const x = cell(r, p, stream, c);
    return x === undefined ? undefined : x.ok === 0 ? null : f(x);
  };
  const rps: BarChart = {
    title: "Requests per second (higher is better)",
    unit: "requests/s",
    log: true,
    series,
    groups: scen.map((s) => ({ label: s.label, values: peers.map((p) => value(p, s.stream, s.c, (x) => x.rps.median)) })),
  };
  const lat: BarChart = {
    title: "Added p50 latency over direct (lower is better)",
    unit: "ms",
    series: series.filter((s) => s.name !== "direct"),
    digits: 2,
    groups: scen.map((s) => ({ label: s.label, values: peers.filter((p) => p !== "direct").map((p) => value(p, s.stream, s.c, (x) => x.addedP50.median)) })),
  };
  return chartSvg([rps, lat], `npm run bench, ${r.machine.date ?? ""}, ${r.machine.cpu ?? ""}; medians of ${r.config.rounds ?? "?"} rounds`);
}
