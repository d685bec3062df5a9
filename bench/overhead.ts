// Gateway overhead: the same OpenAI-style requests direct to the fake upstream and through each peer,
// non-streaming and streaming, at each concurrency, in interleaved rounds (round r runs every peer once, so
// drift on a shared machine hits all peers alike). Added latency = a peer's percentile minus direct's, per round.
import { runLoad, type LoadResult } from "./lib/load.js";
import { percentile, summarize, type Summary } from "./lib/stats.js";
import { MODEL, type Peer } from "./lib/peers.js";
import { cpuMs } from "./lib/cpu.js";

export interface RunBudget {
  maxRequests: number;
  maxMs: number;
}

export interface OverheadConfig {
  rounds: number;
  concurrencies: number[];
  /** Budget per (peer, round) by concurrency. */
  budget(concurrency: number): RunBudget;
  /** Completion tokens per answer (= streamed chunks, plus the final one). */
  tokens: number;
  /** Requests before each measured run (connection set-up, JIT). */
  warmup: number;
}

export interface OverheadCell {
  peer: Peer["name"];
  stream: boolean;
  concurrency: number;
  rps: Summary;
  p50: Summary;
  p99: Summary;
  addedP50: Summary;
  addedP99: Summary;
  chunksPerSec: Summary;
  /** CPU time of the peer's own processes per request (ms), all cores together; NaN for direct. */
  cpuMsPerRequest: Summary;
  ok: number;
  failed: number;
  errors: string[];
}

export function requestBody(stream: boolean, tokens: number): string {
  return JSON.stringify({
    model: MODEL,
    messages: [{ role: "user", content: "Summarize the benefits of confidential computing for AI inference in one line." }],
    max_tokens: tokens,
    stream,
  });
}

type Progress = (line: string) => void;

export async function measureOverhead(peers: Peer[], cfg: OverheadConfig, progress: Progress): Promise<OverheadCell[]> {
  const cells: OverheadCell[] = [];
  for (const stream of [false, true]) {
    for (const concurrency of cfg.concurrencies) {
      const body = requestBody(stream, cfg.tokens);
      const results = new Map<Peer["name"], LoadResult[]>(peers.map((p) => [p.name, []]));
      const cpu = new Map<Peer["name"], number[]>(peers.map((p) => [p.name, []]));
      const broken = new Map<Peer["name"], string[]>();
      for (let round = 0; round < cfg.rounds; round++) {
        for (const peer of peers) {
          if (broken.has(peer.name)) continue;
          const target = { baseUrl: peer.baseUrl, path: "/v1/chat/completions", headers: peer.headers };
          const warm = await runLoad(target, { concurrency: Math.min(concurrency, cfg.warmup), maxRequests: cfg.warmup, maxMs: 5_000, body, stream });
          if (warm.ok === 0) {
            broken.set(peer.name, warm.errors);
            progress(`  ${peer.name.padEnd(8)} ${stream ? "stream" : "json  "} c=${String(concurrency).padEnd(3)} FAILS every request: ${warm.errors[0] ?? "?"}`);
            continue;
          }
          const pids = peer.children.map((c) => c.proc.pid).filter((p): p is number => p !== undefined);
          const cpu0 = pids.length ? cpuMs(pids) : Number.NaN;
          const r = await runLoad(target, { concurrency, ...cfg.budget(concurrency), body, stream });
          results.get(peer.name)!.push(r);
          cpu.get(peer.name)!.push(pids.length && r.ok ? (cpuMs(pids) - cpu0) / r.ok : Number.NaN);
          progress(
            `  round ${round + 1}/${cfg.rounds} ${peer.name.padEnd(8)} ${stream ? "stream" : "json  "} c=${String(concurrency).padEnd(3)} ` +
              `${r.requestsPerSec.toFixed(0).padStart(6)} req/s  p50 ${percentile(r.latenciesMs, 50).toFixed(2).padStart(7)} ms  p99 ${percentile(r.latenciesMs, 99).toFixed(2).padStart(7)} ms` +
              (stream ? `  ${r.chunksPerSec.toFixed(0).padStart(7)} chunks/s` : "") +
              (r.failed ? `  ${r.failed} FAILED (${r.errors[0]})` : ""),
          );
        }
      }
      const direct = results.get("direct") ?? [];
      for (const peer of peers) {
        const rs = results.get(peer.name)!;
        const added = (p: number) => rs.map((r, i) => (direct[i] ? percentile(r.latenciesMs, p) - percentile(direct[i].latenciesMs, p) : Number.NaN));
        cells.push({
          peer: peer.name,
          stream,
          concurrency,
          rps: summarize(rs.map((r) => r.requestsPerSec)),
          p50: summarize(rs.map((r) => percentile(r.latenciesMs, 50))),
          p99: summarize(rs.map((r) => percentile(r.latenciesMs, 99))),
          addedP50: summarize(added(50)),
          addedP99: summarize(added(99)),
          chunksPerSec: summarize(stream ? rs.map((r) => r.chunksPerSec) : []),
          cpuMsPerRequest: summarize(cpu.get(peer.name)!),
          ok: rs.reduce((s, r) => s + r.ok, 0),
          failed: rs.reduce((s, r) => s + r.failed, 0) + (broken.has(peer.name) ? cfg.warmup : 0),
          errors: [...new Set([...(broken.get(peer.name) ?? []), ...rs.flatMap((r) => r.errors)])].slice(0, 3),
        });
      }
    }
  }
  return cells;
}
