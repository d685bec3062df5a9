// A load generator for long-lived SSE streams (what users of an inference network feel): keeps `streams` chat
// completions open at once for a while, each replaced by a new one when it ends, and records per stream the time
// to the first token and every gap between two tokens as the app receives them. Every stream is checked (HTTP 200,
// the expected number of tokens, [DONE] at the end); anything else counts as a failure with its reason kept.
import http from "node:http";

export interface StreamLoadOptions {
  /** Streams open at once. */
  streams: number;
  /** Slots start their first stream spread over this long (a thousand connects at once overflow the accept queue). */
  rampMs: number;
  /** After the ramp, slots keep starting new streams for this long; then the open ones are finished. */
  measureMs: number;
  body: string;
  /** Tokens each answer must carry (a stream with fewer is a failure). */
  expectTokens: number;
  /** Give up on one stream after this long without a byte. */
  idleTimeoutMs?: number;
  /** Called once all slots run and the ramp is over (e.g. to sample memory with every stream open). */
  onSteady?: () => void;
}

export interface StreamLoadResult {
  /** Streams that ran to their end and passed the checks. */
  ok: number;
  failed: number;
  errors: string[];
  /**
   * Aggregate tokens per second: every token received, over the time from the first request to the last token. Ramp
   * and tail are in it for every peer alike; a peer that falls behind the engine takes longer for fewer tokens.
   */
  tokensPerSec: number;
  /** Tokens received in all (all streams, whole run). */
  tokens: number;
  /** Time from sending a request to its first token, ms, one per successful stream. */
  ttftMs: number[];
  /** Time between two consecutive tokens of one stream, ms. */
  gapsMs: number[];
  /** Most streams that were open at one time. */
  maxOpen: number;
  elapsedMs: number;
}

const MAX_ERRORS_KEPT = 5;
const ERROR_PREVIEW = 160;
/** A content token in an SSE event: a non-empty delta content (chat) or text (completions). */
const TOKEN = /"(?:content|text)":"[^"]/;

export async function runStreams(target: { baseUrl: string; path: string; headers?: Record<string, string> }, o: StreamLoadOptions): Promise<StreamLoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.streams });
  const url = new URL(target.path, target.baseUrl);
  const ttft: number[] = [];
  const gaps: number[] = [];
  const errors = new Set<string>();
  let ok = 0;
  let failed = 0;
  let tokens = 0;
  let lastTokenAt = 0;
  let open = 0;
  let maxOpen = 0;
  const t0 = performance.now();
  const deadline = t0 + o.rampMs + o.measureMs;
  const fail = (why: string) => {
    failed++;
    if (errors.size < MAX_ERRORS_KEPT) errors.add(why);
  };

  const once = () =>
    new Promise<void>((resolve) => {
      const sent = performance.now();
      let last = 0;
      let count = 0;
      let pending = "";
      let done = false;
      let firstAt = 0;
      let errorEvent: string | undefined;
      const localGaps: number[] = [];
      open++;
      maxOpen = Math.max(maxOpen, open);
      let settled = false;
      const finish = (why?: string) => {
        if (settled) return;
        settled = true;
        open--;
        if (why) fail(why);
        else {
          ok++;
          ttft.push(firstAt - sent);
          for (const g of localGaps) gaps.push(g);
        }
        resolve();
      };
      const req = http.request(url, { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(o.body), ...target.headers }, timeout: o.idleTimeoutMs ?? 30_000 }, (res) => {
        if (res.statusCode !== 200) {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (text += c));
          res.on("end", () => finish(`HTTP ${res.statusCode}: ${text.replace(/\s+/g, " ").slice(0, ERROR_PREVIEW)}`));
          res.on("error", (e) => finish(e.message));
          return;
        }
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          const now = performance.now();
          const events = (pending + c).split("\n\n");
          pending = events.pop() ?? "";
          for (const ev of events) {
            if (ev === "data: [DONE]") done = true;
            else if (TOKEN.test(ev)) {
              count++;
              tokens++;
              lastTokenAt = now;
              if (count === 1) firstAt = now;
              else localGaps.push(now - last);
              last = now;
            } else if (ev.includes('"error"')) errorEvent ??= `error event: ${ev.slice(0, ERROR_PREVIEW)}`;
          }
        });
        res.on("error", (e) => finish(e.message));
        res.on("end", () => {
          if (errorEvent) finish(errorEvent);
          else if (!done) finish(`stream ended without [DONE] after ${count} tokens`);
          else if (count !== o.expectTokens) finish(`stream carried ${count} tokens, not ${o.expectTokens}`);
          else finish();
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no byte for ${o.idleTimeoutMs ?? 30_000} ms`)));
      req.on("error", (e) => finish(e.message));
      req.end(o.body);
    });

  const slot = async (i: number) => {
    await new Promise((r) => setTimeout(r, (o.rampMs * i) / o.streams));
    do await once();
    while (performance.now() < deadline);
  };
  let steady: NodeJS.Timeout | undefined;
  if (o.onSteady) steady = setTimeout(o.onSteady, o.rampMs + Math.min(2_000, o.measureMs / 2));
  await Promise.all(Array.from({ length: o.streams }, (_, i) => slot(i)));
  clearTimeout(steady);
  agent.destroy();
  return { ok, failed, errors: [...errors], tokensPerSec: lastTokenAt > t0 ? (tokens * 1000) / (lastTokenAt - t0) : 0, tokens, ttftMs: ttft, gapsMs: gaps, maxOpen, elapsedMs: performance.now() - t0 };
}
