// A node's counters over time: one sample of its cumulative numbers every few seconds, the last hour kept. Windowed
// rates (1 min, 5 min, 1 h) in /status and the dashboard's charts are both differences between two samples, so
// nothing is counted twice and a rate is exact over the span it names.
import { HEADLINE_MONEY, MONEY_PATHS, numberAt, type NodeMetrics, type NodeRole, type StatusObject } from "./metrics.js";

/** The cumulative numbers of one moment. */
export interface Sample {
  /** Unix time, milliseconds. */
  t: number;
  requests: number;
  completed: number;
  failed: number;
  promptTokens: number;
  completionTokens: number;
  /** The role's headline money (client: spent, worker: earned, proxy: fees), nanoTON. */
  nano: number;
  totalMsSum: number;
  totalCount: number;
  ttftMsSum: number;
  ttftCount: number;
}

export const WINDOWS = { "1m": 60_000, "5m": 300_000, "1h": 3_600_000 } as const;
export type WindowName = keyof typeof WINDOWS;

export interface WindowRates {
  /** The span the rates cover: the window, or less while the node is younger than it. */
  seconds: number;
  requestsPerSecond: number;
  completedPerSecond: number;
  failedPerSecond: number;
  promptTokensPerSecond: number;
  completionTokensPerSecond: number;
  /** Headline money per hour (nanoTON), and its kind (spent, earned, fees). */
  nanoPerHour: number;
  money: string;
  /** Mean latency of requests completed in the window, ms (absent when none completed). */
  meanLatencyMs?: number;
  meanTtftMs?: number;
}

export const SAMPLE_INTERVAL_MS = 2_000;
const KEEP_MS = WINDOWS["1h"] + 10_000;

export function sampleOf(role: NodeRole, s: StatusObject, m: NodeMetrics, t = Date.now()): Sample {
  const n = (path: string) => numberAt(s, path) ?? 0;
  return {
    t,
    requests: n(role === "proxy" || role === "client" ? "requests.total" : "requests.requests"),
    completed: n("requests.completed"),
    failed: n("requests.failed"),
    promptTokens: n("tokens.prompt"),
    completionTokens: n("tokens.completion"),
    nano: n(MONEY_PATHS[role][HEADLINE_MONEY[role]]!),
    ...m.latency,
  };
}

export class History {
  private readonly samples: Sample[] = [];
  private timer?: NodeJS.Timeout;
  private readonly listeners = new Set<(s: Sample, status: StatusObject) => void>();

  constructor(
    private readonly role: NodeRole,
    private readonly metrics: NodeMetrics,
    private readonly status: () => StatusObject,
  ) {}

  start(intervalMs = SAMPLE_INTERVAL_MS): void {
    if (this.timer) return;
    this.take();
    this.timer = setInterval(() => this.take(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }

  /** Called with every new sample and the status it was read from (the dashboard's live feed). */
  onSample(fn: (s: Sample, status: StatusObject) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  take(t = Date.now()): Sample {
    const status = this.status();
    const s = sampleOf(this.role, status, this.metrics, t);
    this.push(s);
    for (const fn of this.listeners) fn(s, status);
    return s;
  }

  push(s: Sample): void {
    this.samples.push(s);
    while (this.samples.length > 2 && s.t - this.samples[0]!.t > KEEP_MS) this.samples.shift();
  }

  /** The samples of the last `ms`, thinned to at most `max` points (charts). */
  series(ms: number = WINDOWS["1h"], max = 360): Sample[] {
    const now = this.samples.at(-1)?.t ?? Date.now();
    const within = this.samples.filter((s) => now - s.t <= ms);
    if (within.length <= max) return within;
    const step = within.length / max;
    const out: Sample[] = [];
    for (let i = 0; i < max; i++) out.push(within[Math.floor(i * step)]!);
    out.push(within.at(-1)!);
    return out;
  }

  /** Rates over each window, between the newest sample and the oldest one inside the window. */
  rates(): Record<WindowName, WindowRates> | Record<string, never> {
    const last = this.samples.at(-1);
    if (!last) return {};
    const out = {} as Record<WindowName, WindowRates>;
    for (const [name, ms] of Object.entries(WINDOWS) as [WindowName, number][]) {
      const first = this.samples.find((s) => last.t - s.t <= ms) ?? last;
      out[name] = ratesBetween(first, last, HEADLINE_MONEY[this.role]);
    }
    return out;
  }
}

export function ratesBetween(a: Sample, b: Sample, money: string): WindowRates {
  const secs = Math.max(0, (b.t - a.t) / 1000);
  const per = (x: number) => (secs > 0 ? round(x / secs) : 0);
  const done = b.totalCount - a.totalCount;
  const firsts = b.ttftCount - a.ttftCount;
  return {
    seconds: Math.round(secs),
    requestsPerSecond: per(b.requests - a.requests),
    completedPerSecond: per(b.completed - a.completed),
    failedPerSecond: per(b.failed - a.failed),
    promptTokensPerSecond: per(b.promptTokens - a.promptTokens),
    completionTokensPerSecond: per(b.completionTokens - a.completionTokens),
    nanoPerHour: secs > 0 ? Math.round(((b.nano - a.nano) / secs) * 3600) : 0,
    money,
    ...(done > 0 ? { meanLatencyMs: Math.round((b.totalMsSum - a.totalMsSum) / done) } : {}),
    ...(firsts > 0 ? { meanTtftMs: Math.round((b.ttftMsSum - a.ttftMsSum) / firsts) } : {}),
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
