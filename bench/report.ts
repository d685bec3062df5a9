// Turns the measurements into BENCHMARKS.md text, the target verdicts and the overhead chart.
import os from "node:os";
import { fromNano } from "@ton/core";
import type { OverheadCell } from "./overhead.js";
import type { CryptoResults } from "./crypto-costs.js";
import type { BatchResult, GasRow } from "./chain-costs.js";
import type { EmbeddedResult } from "./embedded.js";
import { CEILING_GAP_P99_MS, CEILING_RSS_MIB, type CeilingStep, type StreamingCell } from "./streaming.js";
import type { Frame } from "./lib/profile-summary.js";
import type { DurableWriteResult } from "./lib/durable.js";
import type { Peer, Skipped } from "./lib/peers.js";
import { fmt, num } from "./lib/stats.js";
import { chartSvg, type BarChart } from "./lib/svg.js";

/** The issue's targets (#17). */
export const TARGET_STREAM_RATIO = 0.95;
export const TARGET_ADDED_TTFT_P99_MS = 10;
export const TARGET_ADDED_GAP_P99_MS = 2;
export const TARGET_CEILING_STREAMS = 10_000;
export const TARGET_ADDED_P50_MS = 1;
export const TARGET_EMBEDDED_RATIO = 0.95;
export const TARGET_REQUEST_CRYPTO_US = 1000;
export const TARGET_CACHED_ATTESTATION_US = 100;
export const TARGET_TXS_PER_REQUEST = 0;
/** Concurrency of the CPU-per-request target. */
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
  streaming?: StreamingCell[];
  streamingPeers?: { name: string; label: string }[];
  ceiling?: CeilingStep[];
  profiles?: { streams: number; files: { role: string; file: string; kib: number; totalMs: number; idleShare: number; frames: Frame[] }[] };
  /** One durable ledger write on the disk the ledgers of the run live on (billing makes two per request, in sequence). */
  durable?: DurableWriteResult;
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

/** Target 1's stream count: the largest the run measured. */
const targetStreams = (r: BenchResults) => Math.max(0, ...(r.streaming ?? []).map((x) => x.streams));
const scell = (r: BenchResults, peer: string, n = targetStreams(r)) => r.streaming?.find((x) => x.peer === peer && x.streams === n && x.ok > 0);
const cpuSum = (c: StreamingCell) => c.processes.reduce((a, p) => a + p.cpuMsPer1000Tokens.median, 0);

/** Why a target is missed, from this run's own numbers. Empty when the needed sections did not run. */
export function targetAnalysis(r: BenchResults, cores = Number(r.machine.cores ?? 0) || os.cpus().length): string[] {
  const out: string[] = [];
  const d = scell(r, "direct");
  const co = scell(r, "cocoon");
  if (d && co && co.tokensPerSec.median < TARGET_STREAM_RATIO * d.tokensPerSec.median) {
    const cpu = cpuSum(co);
    const need = (cpu * d.tokensPerSec.median) / 1000 / 1000;
    out.push(
      `- **Streaming throughput.** The engine delivered ${num(d.tokensPerSec.median, 0)} tokens/s directly. Cocoon's processes used ` +
        `${num(cpu, 1)} ms of CPU per 1,000 tokens together (${co.processes.map((p) => `${p.name.replace(/^cocoon /, "")} ${num(p.cpuMsPer1000Tokens.median, 1)}`).join(", ")}), ` +
        `so carrying the engine's rate needs ${num(need, 2)} CPU-seconds per second, on a machine with ${cores} cores that also runs the engine, ` +
        `the load generator${r.machine["load average at start"] ? ` and other work (load average at start: ${r.machine["load average at start"]})` : ""}. ` +
        `Where a token's CPU goes: the profiles in section "CPU profiles" below.`,
    );
  }
  const last = r.ceiling?.at(-1);
  if (r.ceiling?.length && last && !last.held) {
    const held = r.ceiling.filter((s) => s.held).at(-1);
    out.push(`- **Stream ceiling.** ${held ? `${held.streams} streams were held` : "No step was held"}; at ${last.streams}: ${last.why.join("; ")}.`);
  }
  const billed = alive(cell(r, "cocoon", false, TARGET_CONCURRENCY));
  const free = alive(cell(r, "cocoon-unbilled", false, TARGET_CONCURRENCY));
  const pk = alive(cell(r, "portkey", false, TARGET_CONCURRENCY));
  const crypto = r.crypto?.perRequest[0];
  if (billed && pk && billed.cpuMsPerRequest.median > pk.cpuMsPerRequest.median) {
    out.push(
      `- **CPU per request.** Cocoon used ${num(billed.cpuMsPerRequest.median, 2)} ms per request with billing` +
        (free ? ` and ${num(free.cpuMsPerRequest.median, 2)} ms without (billing: ${num(billed.cpuMsPerRequest.median - free.cpuMsPerRequest.median, 2)} ms)` : "") +
        `, against portkey's ${num(pk.cpuMsPerRequest.median, 2)} ms` +
        (crypto ? `; the cryptography Cocoon owes every request (sealing, opening, receipt, voucher) is ${num(crypto.us.median / 1000, 3)} ms of it, a cost portkey does not have` : "") +
        `. Both figures are process CPU from /proc on a shared machine.`,
    );
  }
  const c1 = alive(cell(r, "cocoon", false, 1));
  const row = (prefix: string) => r.crypto?.rows.find((x) => x.op.startsWith(prefix))?.us.median;
  const seal1 = row("sealRequest, 1 recipient");
  const open = row("openRequest");
  const sign = row("signReceipt");
  const verify = row("verifyReceipt");
  const u1 = alive(cell(r, "cocoon-unbilled", false, 1));
  const dw = r.durable;
  if (c1 && c1.addedP50.median > TARGET_ADDED_P50_MS && ((seal1 !== undefined && open !== undefined && sign !== undefined && verify !== undefined) || dw)) {
    const parts: string[] = [];
    if (seal1 !== undefined && open !== undefined && sign !== undefined && verify !== undefined) {
      const pathMs = (seal1 + open + sign + 2 * verify) / 1000;
      parts.push(
        `Before an answer reaches the app, one request needs, one after another: sealing (${num(seal1 / 1000, 3)} ms), opening ` +
          `(${num(open / 1000, 3)} ms), signing the receipt (${num(sign / 1000, 3)} ms) and verifying it at the proxy and at the client ` +
          `(2 × ${num(verify / 1000, 3)} ms): ${num(pathMs, 2)} ms of cryptography, besides two TLS hops and two HTTP hops.`,
      );
    }
    if (dw) {
      parts.push(
        `Billing adds two durable ledger writes in sequence: the proxy's receipt is on disk before it reports the cost, and the client's ` +
          `receipt and voucher before it answers the app. On the disk this run's ledgers live on, one such write took ${num(dw.durableP50Ms, 2)} ms ` +
          `at the median (p90 ${num(dw.durableP90Ms, 2)} ms; a bare fdatasync ${num(dw.fsyncP50Ms, 2)} ms), so ${num(2 * dw.durableP50Ms, 2)} ms of the ` +
          `billed path's added latency is the disk, which billing cannot skip without acknowledging what a crash could lose.`,
      );
    }
    parts.push(
      `Cocoon added ${num(c1.addedP50.median, 2)} ms at concurrency 1` +
        (u1 ? ` with billing and ${num(u1.addedP50.median, 2)} ms without` : "") +
        `; the rest is JavaScript work per hop and scheduling on a shared machine (docs/performance.md traces one request).`,
    );
    out.push(`- **Latency.** ${parts.join(" ")}`);
  }
  return out;
}

export function verdicts(r: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  const d = scell(r, "direct");
  const co = scell(r, "cocoon");
  const n = targetStreams(r);
  const coRaw = r.streaming?.find((x) => x.peer === "cocoon" && x.streams === n);
  out.push({
    target: `1a. ${n || "1000"} streams (fake engine, ${"128"} tokens at one per step): Cocoon ≥ ${TARGET_STREAM_RATIO}x direct's aggregate tokens/s`,
    measured: d && co ? `${num(co.tokensPerSec.median, 0)} vs ${num(d.tokensPerSec.median, 0)} tokens/s = ${num(co.tokensPerSec.median / d.tokensPerSec.median, 2)}x${co.failed ? ` (${co.failed} streams failed)` : ""}` : coRaw ? `Cocoon fails: ${coRaw.errors[0] ?? "?"}` : "not measured",
    met: d && co ? co.tokensPerSec.median >= TARGET_STREAM_RATIO * d.tokensPerSec.median && co.failed === 0 : coRaw ? false : undefined,
  });
  out.push({
    target: `1b. added time-to-first-token p99 ≤ ${TARGET_ADDED_TTFT_P99_MS} ms`,
    measured: co ? `${num(co.addedTtftP99.median, 1)} ms (direct's p99 ${num(d?.ttftP99.median, 1)} ms)` : "not measured",
    met: co ? co.addedTtftP99.median <= TARGET_ADDED_TTFT_P99_MS : undefined,
  });
  out.push({
    target: `1c. added inter-token gap p99 ≤ ${TARGET_ADDED_GAP_P99_MS} ms`,
    measured: co ? `${num(co.addedGapP99.median, 1)} ms (direct's p99 ${num(d?.gapP99.median, 1)} ms)` : "not measured",
    met: co ? co.addedGapP99.median <= TARGET_ADDED_GAP_P99_MS : undefined,
  });
  if (r.ceiling) {
    const held = r.ceiling.filter((s) => s.held).at(-1);
    const top = r.ceiling.find((s) => s.streams >= TARGET_CEILING_STREAMS);
    out.push({
      target: `2. ${TARGET_CEILING_STREAMS} streams at one token/s through one client, one proxy, two workers: all held, added gap p99 ≤ ${CEILING_GAP_P99_MS} ms, RSS together ≤ ${CEILING_RSS_MIB} MiB`,
      measured: held
        ? `largest held: ${held.streams} streams (added gap p99 ${num(held.cocoon?.addedGapP99.median, 1)} ms, ${num(held.cocoonRssMiB, 0)} MiB)${r.ceiling.at(-1)!.held ? "" : `; at ${r.ceiling.at(-1)!.streams}: ${r.ceiling.at(-1)!.why.join("; ").slice(0, 200)}`}`
        : `none held; at ${r.ceiling[0]?.streams}: ${r.ceiling[0]?.why.join("; ").slice(0, 200)}`,
      met: top ? top.held : held ? false : r.ceiling.length ? false : undefined,
    });
  }
  const billed = alive(cell(r, "cocoon", false, TARGET_CONCURRENCY));
  const pk = alive(cell(r, "portkey", false, TARGET_CONCURRENCY));
  out.push({
    target: `3. Cocoon's CPU per request ≤ portkey's (concurrency ${TARGET_CONCURRENCY}, non-streaming, billing on)`,
    measured: billed && pk ? `${num(billed.cpuMsPerRequest.median, 2)} vs ${num(pk.cpuMsPerRequest.median, 2)} ms = ${num(billed.cpuMsPerRequest.median / pk.cpuMsPerRequest.median, 2)}x` : "not measured",
    met: billed && pk ? billed.cpuMsPerRequest.median <= pk.cpuMsPerRequest.median : undefined,
  });
  for (const stream of [false, true]) {
    const c1 = alive(cell(r, "cocoon", stream, 1));
    const n1 = alive(cell(r, "nginx", stream, 1));
    out.push({
      target: `4. Cocoon's added p50 latency ≤ ${TARGET_ADDED_P50_MS} ms (concurrency 1, ${stream ? "streaming" : "non-streaming"})`,
      measured: c1 ? `${num(c1.addedP50.median, 2)} ms${n1 ? ` (nginx ${num(n1.addedP50.median, 2)} ms)` : ""}` : "not measured",
      met: c1 ? c1.addedP50.median <= TARGET_ADDED_P50_MS : undefined,
    });
  }
  if (r.embedded && !("skipped" in r.embedded)) {
    const ratio = r.embedded.network.median / r.embedded.direct.median;
    out.push({ target: `5. embedded model through the network ≥ ${TARGET_EMBEDDED_RATIO}x the engine's tokens/s`, measured: `${num(ratio, 2)}x`, met: ratio >= TARGET_EMBEDDED_RATIO });
  }
  if (r.crypto) {
    for (const p of r.crypto.perRequest) {
      const us = p.us.median;
      out.push({ target: `6. per-request crypto < ${TARGET_REQUEST_CRYPTO_US / 1000} ms (all nodes together, ${p.chunks} chunks: ${p.note})`, measured: `${num(us / 1000, 3)} ms`, met: us < TARGET_REQUEST_CRYPTO_US });
    }
    const cached = r.crypto.rows.filter((x) => /cached \(SHA-256/.test(x.op));
    if (cached.length) {
      const worst = Math.max(...cached.map((x) => x.us.median));
      out.push({ target: `6. cached attestation < ${TARGET_CACHED_ATTESTATION_US / 1000} ms`, measured: cached.map((x) => `${x.op.split(",")[0]} ${num(x.us.median / 1000, 4)} ms`).join("; "), met: worst < TARGET_CACHED_ATTESTATION_US });
    }
  }
  if (r.batches?.length) {
    const perReq = Math.max(...r.batches.map((b) => b.txsPerRequest));
    const settle = new Set(r.batches.map((b) => b.settlementTxs));
    out.push({
      target: "6. zero on-chain transactions per request; settlement a constant independent of request count",
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
  const loads = [r.machine["load average at start"], r.machine["load average at end"]].filter((x): x is string => !!x).map((x) => Number(x.split(" ")[0]));
  const cores = os.cpus().length;
  if (loads.some((l) => l > cores)) {
    L.push(
      `**This run shared the machine with other work**: the 1-minute load average was ${loads.map((l) => l.toFixed(1)).join(" at the start and ")} at the end, ` +
        `on ${cores} cores. Processes waited for a core, so latencies, tokens/s and even CPU time per request (cache and core sharing) ` +
        "are worse than on an idle machine, for every peer; compare peers within this run, not with other runs.",
      "",
    );
  }
  L.push("## Machine and versions", "", "| | |", "|---|---|");
  for (const [k, v] of Object.entries(r.machine)) L.push(`| ${k} | ${v} |`);
  for (const [k, v] of Object.entries(r.config)) L.push(`| ${k} | ${v} |`);
  L.push(`| run time | ${r.durationS.toFixed(0)} s |`, "");

  L.push("## Targets", "", "| target | measured | verdict |", "|---|---|---|");
  for (const v of verdicts(r)) L.push(`| ${v.target} | ${v.measured} | ${mark(v.met)} |`);
  L.push("");
  const why = targetAnalysis(r);
  if (why.length) L.push("### Why a target is missed, from this run's own numbers", "", ...why, "");

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

  if (r.durable) {
    const d = r.durable;
    L.push("### Billing's durable writes on this disk", "");
    L.push(`One usage receipt recorded in a ledger and awaited with \`durable()\` (group commit, then the WAL's fdatasync on the thread pool),`);
    L.push(`${d.writes} in sequence in ${d.dir} (where this run's ledgers live), beside the disk's bare fdatasync (bench/lib/durable.ts). A billed`);
    L.push("request waits for two of them one after the other (the proxy's receipt, then the client's receipt and voucher).", "");
    L.push("| step | p50 ms | p90 ms |", "|---|---:|---:|");
    L.push(`| bare write + fdatasync | ${num(d.fsyncP50Ms, 3)} | ${num(d.fsyncP90Ms, 3)} |`);
    L.push(`| recordReceipt, synchronous part (SQLite statements) | ${num(d.recordP50Ms, 3)} | |`);
    L.push(`| recordReceipt + durable() | ${num(d.durableP50Ms, 3)} | ${num(d.durableP90Ms, 3)} |`, "");
  }

  if (r.streaming) {
    const counts = [...new Set(r.streaming.map((x) => x.streams))];
    L.push("## 1b. Streaming under load (target 1)", "");
    L.push(`${counts.join(" and then ")} chat completions streamed at once, each replaced by a new one when it ends; ${r.config["streaming engine"] ?? "a fake engine"}.`);
    L.push("Times are as the app receives them (the load generator in the bench process). *added* = the peer's p99 minus direct's in the same");
    L.push("round. *tokens/s* = every token received over the time from the first request to the last token. Each stream is checked: HTTP 200, every token,");
    L.push("[DONE]. *CPU/1k tokens* is each process's user+system CPU over the run per 1,000 tokens delivered; *KiB/stream* is its RSS");
    L.push("growth with every stream open over its idle RSS before the run, per stream.", "");
    for (const p of r.streamingPeers ?? []) L.push(`- **${p.name}** — ${p.label}`);
    L.push("");
    L.push("| streams | peer | tokens/s | ratio to direct | TTFT p50 ms | TTFT p99 ms | added TTFT p99 ms | gap p50 ms | gap p99 ms | added gap p99 ms | streams ok | failed |");
    L.push("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (const c of r.streaming) {
      if (c.ok === 0) {
        L.push(`| ${c.streams} | ${c.peer} | fails: ${(c.errors[0] ?? "?").replace(/\|/g, "/").slice(0, 90)} | | | | | | | | 0 | ${c.failed} |`);
        continue;
      }
      const d = scell(r, "direct", c.streams);
      const isDirect = c.peer === "direct";
      L.push(
        `| ${c.streams} | ${c.peer} | ${fmt(c.tokensPerSec, 0)} | ${num(d ? c.tokensPerSec.median / d.tokensPerSec.median : Number.NaN, 2)} | ${fmt(c.ttftP50, 1)} | ${fmt(c.ttftP99, 1)} | ${isDirect ? "—" : fmt(c.addedTtftP99, 1)} | ${fmt(c.gapP50, 1)} | ${fmt(c.gapP99, 1)} | ${isDirect ? "—" : fmt(c.addedGapP99, 1)} | ${c.ok} | ${c.failed} |`,
      );
    }
    L.push("", "Per process:", "", "| streams | peer | process | CPU ms / 1,000 tokens | RSS with all streams open, MiB | KiB per open stream |", "|---:|---|---|---:|---:|---:|");
    for (const c of r.streaming) for (const p of c.processes) L.push(`| ${c.streams} | ${c.peer} | ${p.name} | ${fmt(p.cpuMsPer1000Tokens, 1)} | ${fmt(p.rssMiB, 0)} | ${fmt(p.kibPerStream, 1)} |`);
    L.push("");
    const failing = r.streaming.filter((c) => c.failed > 0);
    if (failing.length) {
      L.push("Failed streams (counted, never timed):", "");
      for (const c of failing) L.push(`- ${c.peer}, ${c.streams} streams: ${c.failed} failed; ${c.errors.map((e) => `\`${e.slice(0, 200)}\``).join("; ")}`);
      L.push("");
    }
  }

  if (r.ceiling) {
    L.push("## 1c. Concurrent stream ceiling (target 2)", "");
    L.push("Ever more streams at one token per second each (a fake engine answering 10 tokens, one per second), direct and through one");
    L.push("Cocoon client, one proxy and two workers (billing on), fresh processes per step; the ladder stops at the first step not held.", "");
    L.push("| streams | held | Cocoon streams ok / failed | added TTFT p99 ms | gap p99 ms (direct) | added gap p99 ms | Cocoon RSS, all processes, MiB | CPU ms / 1,000 tokens (client, proxy, workers) | why not held |");
    L.push("|---:|---|---:|---:|---:|---:|---:|---|---|");
    for (const st of r.ceiling) {
      const c = st.cocoon;
      L.push(
        `| ${st.streams} | ${st.held ? "yes" : "**no**"} | ${c ? `${c.ok} / ${c.failed}` : "n/a"} | ${c ? fmt(c.addedTtftP99, 1) : "n/a"} | ${st.direct ? fmt(st.direct.gapP99, 1) : "n/a"} | ${c ? fmt(c.addedGapP99, 1) : "n/a"} | ${num(st.cocoonRssMiB, 0)} | ${c ? c.processes.map((p) => num(p.cpuMsPer1000Tokens.median, 0)).join(", ") : "n/a"} | ${st.why.join("; ").replace(/\|/g, "/").slice(0, 300)} |`,
      );
    }
    L.push("");
  }

  if (r.profiles) {
    L.push("## CPU profiles under streaming load", "");
    L.push(`V8 CPU profiles (\`node --cpu-prof\`) of each Cocoon process while ${r.profiles.streams} streams ran as in section 1b (a separate, profiled run;`);
    L.push("the profiler slows the processes, so these are for where time goes, not for how much). Open them in Chrome DevTools");
    L.push("(Performance → Load profile) or speedscope for the flame graph. Top frames by self time (share of all samples, idle included):", "");
    for (const f of r.profiles.files) {
      L.push(`**${f.role}** — \`${f.file}\` (${num(f.kib, 0)} KiB), ${num(f.totalMs, 0)} ms sampled, ${num(100 - f.idleShare * 100, 0)}% busy:`, "");
      L.push("| self % | self ms | frame | where |", "|---:|---:|---|---|");
      for (const x of f.frames) L.push(`| ${num(x.share * 100, 1)} | ${num(x.selfMs, 0)} | \`${x.name.replace(/\|/g, "/")}\` | ${x.where.replace(/\|/g, "/")} |`);
      L.push("");
    }
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
  L.push(
    "## Rerun",
    "",
    "`npm run bench` (about 10 minutes). Options: `-- --rounds N`, `-- --model-file FILE.gguf`, `-- --streams 100,1000` (open streams; the largest is target 1's),",
    "`-- --ceiling 250,500,1000,2500,5000,10000` (target 2's ladder), `-- --skip overhead,streaming,ceiling,profiles,crypto,chain,embedded`.",
    "",
  );
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
