// Streaming under realistic load: a fake engine streams `tokens` tokens per answer at one step every `stepMs`
// (bench/fake-stream-engine.ts), and `streams` app streams stay open at once, direct and through each peer, in
// interleaved rounds. Per peer: aggregate tokens/s, time to first token and inter-token gaps as the app sees them
// (added = minus direct's in the same round), CPU per 1,000 tokens and memory per open stream of each process.
import { readFileSync } from "node:fs";
import { runStreams, type StreamLoadResult } from "./lib/stream-load.js";
import { percentile, summarize, type Summary } from "./lib/stats.js";
import { MODEL, type Peer } from "./lib/peers.js";
import { cpuMs } from "./lib/cpu.js";

export interface StreamingConfig {
  streams: number;
  tokens: number;
  stepMs: number;
  rounds: number;
  rampMs: number;
  measureMs: number;
}

export interface ProcessCost {
  /** e.g. "cocoon client". */
  name: string;
  cpuMsPer1000Tokens: Summary;
  /** RSS growth with every stream open over the idle RSS before the run, per open stream (KiB). */
  kibPerStream: Summary;
  /** RSS with every stream open (MiB). */
  rssMiB: Summary;
}

export interface StreamingCell {
  peer: Peer["name"];
  streams: number;
  tokensPerSec: Summary;
  ttftP50: Summary;
  ttftP99: Summary;
  gapP50: Summary;
  gapP99: Summary;
  addedTtftP99: Summary;
  addedGapP99: Summary;
  processes: ProcessCost[];
  ok: number;
  failed: number;
  errors: string[];
}

export function streamBody(tokens: number): string {
  return JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "Think it through step by step, then answer." }], max_tokens: tokens, stream: true });
}

/** Resident set size of one process (KiB), from /proc; NaN where unreadable. */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

type Progress = (line: string) => void;

export async function measureStreaming(peers: Peer[], cfg: StreamingConfig, progress: Progress): Promise<StreamingCell[]> {
  const body = streamBody(cfg.tokens);
  const runs = new Map<Peer["name"], StreamLoadResult[]>(peers.map((p) => [p.name, []]));
  const procs = new Map<string, { cpu: number[]; kib: number[]; rss: number[] }>();
  const broken = new Map<Peer["name"], string[]>();
  for (let round = 0; round < cfg.rounds; round++) {
    for (const peer of peers) {
      if (broken.has(peer.name)) continue;
      const target = { baseUrl: peer.baseUrl, path: "/v1/chat/completions", headers: peer.headers };
      // Warm-up: a few streams (connections, JIT, candidate lists), short.
      const warm = await runStreams(target, { streams: 8, rampMs: 50, measureMs: 10, body: streamBody(4), expectTokens: 4 });
      if (warm.ok === 0) {
        broken.set(peer.name, warm.errors);
        progress(`  ${peer.name.padEnd(8)} streams FAIL every request: ${warm.errors[0] ?? "?"}`);
        continue;
      }
      const children = peer.children.filter((c) => c.proc.pid !== undefined);
      const idle = children.map((c) => rssKiB(c.proc.pid!));
      const cpu0 = children.map((c) => cpuMs([c.proc.pid!]));
      let steady: number[] = [];
      let openAtSteady = 0;
      const r = await runStreams(target, {
        streams: cfg.streams,
        rampMs: cfg.rampMs,
        measureMs: cfg.measureMs,
        body,
        expectTokens: cfg.tokens,
        onSteady: () => {
          steady = children.map((c) => rssKiB(c.proc.pid!));
          openAtSteady = cfg.streams;
        },
      });
      runs.get(peer.name)!.push(r);
      children.forEach((c, i) => {
        const e = procs.get(c.name) ?? { cpu: [], kib: [], rss: [] };
        e.cpu.push(r.tokens ? ((cpuMs([c.proc.pid!]) - cpu0[i]!) * 1000) / r.tokens : Number.NaN);
        e.kib.push(openAtSteady ? (steady[i]! - idle[i]!) / openAtSteady : Number.NaN);
        e.rss.push(steady.length ? steady[i]! / 1024 : Number.NaN);
        procs.set(c.name, e);
      });
      progress(
        `  round ${round + 1}/${cfg.rounds} ${peer.name.padEnd(8)} ${String(cfg.streams).padStart(5)} streams  ${r.tokensPerSec.toFixed(0).padStart(6)} tokens/s  ` +
          `TTFT p99 ${percentile(r.ttftMs, 99).toFixed(1).padStart(6)} ms  gap p50 ${percentile(r.gapsMs, 50).toFixed(1)} p99 ${percentile(r.gapsMs, 99).toFixed(1).padStart(6)} ms  ` +
          `${r.ok} ok${r.failed ? `  ${r.failed} FAILED (${r.errors[0]})` : ""}`,
      );
    }
  }
  const direct = runs.get("direct") ?? [];
  const cells: StreamingCell[] = [];
  for (const peer of peers) {
    const rs = runs.get(peer.name)!;
    const added = (pick: (r: StreamLoadResult) => number[]) => rs.map((r, i) => (direct[i] ? percentile(pick(r), 99) - percentile(pick(direct[i]), 99) : Number.NaN));
    cells.push({
      peer: peer.name,
      streams: cfg.streams,
      tokensPerSec: summarize(rs.map((r) => r.tokensPerSec)),
      ttftP50: summarize(rs.map((r) => percentile(r.ttftMs, 50))),
      ttftP99: summarize(rs.map((r) => percentile(r.ttftMs, 99))),
      gapP50: summarize(rs.map((r) => percentile(r.gapsMs, 50))),
      gapP99: summarize(rs.map((r) => percentile(r.gapsMs, 99))),
      addedTtftP99: summarize(added((r) => r.ttftMs)),
      addedGapP99: summarize(added((r) => r.gapsMs)),
      processes: peer.children
        .filter((c) => procs.has(c.name))
        .map((c) => {
          const e = procs.get(c.name)!;
          return { name: c.name, cpuMsPer1000Tokens: summarize(e.cpu), kibPerStream: summarize(e.kib), rssMiB: summarize(e.rss) };
        }),
      ok: rs.reduce((a, r) => a + r.ok, 0),
      failed: rs.reduce((a, r) => a + r.failed, 0) + (broken.has(peer.name) ? 1 : 0),
      errors: [...new Set([...(broken.get(peer.name) ?? []), ...rs.flatMap((r) => r.errors)])].slice(0, 5),
    });
  }
  return cells;
}

export interface CeilingStep {
  streams: number;
  direct: StreamingCell | undefined;
  cocoon: StreamingCell | undefined;
  /** RSS of every Cocoon process together with all streams open (MiB). */
  cocoonRssMiB: number;
  held: boolean;
  /** Why the step does not count as held (failures, gaps, memory), if it does not. */
  why: string[];
}

export const CEILING_GAP_P99_MS = 50;
export const CEILING_RSS_MIB = 1024;

/**
 * The concurrent-stream ceiling: ever more streams at one token per `stepMs`, direct and through Cocoon, until a
 * step is not held (a stream failed, the added gap p99 passed its bound, or Cocoon's processes outgrew the memory
 * bound). `startPeers` starts fresh peers for each step so one step's leftovers cannot burden the next.
 */
export async function measureCeiling(
  startPeers: () => Promise<{ direct: Peer; cocoon: Peer; stop: () => Promise<void> }>,
  cfg: { ladder: number[]; tokens: number; stepMs: number; connectPerSec: number; measureMs: number },
  progress: Progress,
): Promise<CeilingStep[]> {
  const steps: CeilingStep[] = [];
  for (const n of cfg.ladder) {
    const { direct, cocoon, stop } = await startPeers();
    try {
      progress(`  ${n} streams, one token every ${cfg.stepMs} ms`);
      const cells = await measureStreaming([direct, cocoon], { streams: n, tokens: cfg.tokens, stepMs: cfg.stepMs, rounds: 1, rampMs: Math.ceil((n / cfg.connectPerSec) * 1000), measureMs: cfg.measureMs }, progress);
      const d = cells.find((c) => c.peer === "direct");
      const c = cells.find((x) => x.peer === cocoon.name);
      const rss = c ? c.processes.reduce((a, p) => a + p.rssMiB.median, 0) : Number.NaN;
      const why: string[] = [];
      if (!c || c.ok === 0) why.push(`no stream completed through Cocoon${c?.errors[0] ? `: ${c.errors[0]}` : ""}`);
      else {
        if (c.failed) why.push(`${c.failed} of ${c.ok + c.failed} streams failed (${c.errors.join("; ").slice(0, 300)})`);
        if (!(c.addedGapP99.median <= CEILING_GAP_P99_MS)) why.push(`added gap p99 ${c.addedGapP99.median.toFixed(1)} ms > ${CEILING_GAP_P99_MS} ms`);
        if (!(rss <= CEILING_RSS_MIB)) why.push(`Cocoon's processes hold ${rss.toFixed(0)} MiB > ${CEILING_RSS_MIB} MiB`);
      }
      if (d && d.failed) why.push(`the direct baseline itself failed ${d.failed} streams (${d.errors[0] ?? "?"}): the load generator or engine is the limit`);
      steps.push({ streams: n, direct: d, cocoon: c, cocoonRssMiB: rss, held: why.length === 0, why });
      progress(`  ${n} streams: ${why.length ? `NOT held: ${why.join("; ")}` : "held"}`);
      if (why.length) break;
    } finally {
      await stop();
    }
  }
  return steps;
}
