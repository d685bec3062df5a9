// Micro-benchmark of one operation: warm up, then several rounds of back-to-back calls for a fixed time each;
// the result is the median µs per call over rounds, with the spread.
import { summarize, type Summary } from "./stats.js";

export interface MicroOptions {
  /** Time per round. */
  roundMs?: number;
  rounds?: number;
  warmup?: number;
  /** Hard cap on calls per round (for slow operations). */
  maxCalls?: number;
}

export interface MicroResult {
  name: string;
  /** Microseconds per call (wall clock). */
  us: Summary;
  calls: number;
}

const DEFAULT_ROUND_MS = 150;
const DEFAULT_ROUNDS = 5;
const DEFAULT_WARMUP = 10;
const DEFAULT_MAX_CALLS = 1_000_000;

export async function micro(name: string, op: () => unknown, o: MicroOptions = {}): Promise<MicroResult> {
  const roundMs = o.roundMs ?? DEFAULT_ROUND_MS;
  const maxCalls = o.maxCalls ?? DEFAULT_MAX_CALLS;
  for (let i = 0; i < (o.warmup ?? DEFAULT_WARMUP); i++) await op();
  const perRound: number[] = [];
  let calls = 0;
  for (let r = 0; r < (o.rounds ?? DEFAULT_ROUNDS); r++) {
    let n = 0;
    const start = performance.now();
    let now = start;
    while (now - start < roundMs && n < maxCalls) {
      await op();
      n++;
      now = performance.now();
    }
    perRound.push(((now - start) * 1000) / n);
    calls += n;
  }
  return { name, us: summarize(perRound), calls };
}
