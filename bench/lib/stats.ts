// Small statistics helpers for the benchmarks: medians of rounds, percentiles of latency samples, spread.

/** The p-th percentile (0..100) of samples, by nearest rank on a sorted copy. NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile must be within 0..100, got ${p}`);
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export const median = (samples: readonly number[]): number => {
  if (samples.length === 0) return Number.NaN;
  const s = [...samples].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

/** Median of rounds with its spread: (max - min) / median, as a fraction. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  /** (max - min) / |median|; 0 for a single round. */
  spread: number;
  rounds: number;
}

export function summarize(rounds: readonly number[]): Summary {
  const finite = rounds.filter((x) => Number.isFinite(x));
  if (finite.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, spread: Number.NaN, rounds: 0 };
  const m = median(finite);
  const min = Math.min(...finite);
  const max = Math.max(...finite);
  return { median: m, min, max, spread: m === 0 ? 0 : (max - min) / Math.abs(m), rounds: finite.length };
}

/** "12.3 ±4%" style text of a summary, with `digits` decimals. */
export function fmt(s: Summary, digits = 1): string {
  if (!Number.isFinite(s.median)) return "n/a";
  const spread = s.rounds > 1 ? ` ±${Math.round((s.spread * 100) / 2)}%` : "";
  return `${s.median.toFixed(digits)}${spread}`;
}

/** Fixed decimals, or "n/a" for NaN/undefined. */
export function num(x: number | undefined, digits = 1): string {
  return x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(digits);
}
