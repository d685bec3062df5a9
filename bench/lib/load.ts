// A bounded, keep-alive HTTP load generator for OpenAI-style POSTs (non-streaming or SSE), built on node:http.
// Each request is checked: HTTP 200 and a real answer (a JSON body with choices, or an SSE stream that ends
// with [DONE]); anything else counts as a failure with its reason kept, so a broken peer can never look fast.
import http from "node:http";

export interface LoadTarget {
  /** Base URL, e.g. http://127.0.0.1:8080 (the path is appended). */
  baseUrl: string;
  path: string;
  headers?: Record<string, string>;
}

export interface LoadOptions {
  concurrency: number;
  /** Stop after this many completed requests... */
  maxRequests: number;
  /** ...or after this long, whichever comes first (requests in flight are awaited). */
  maxMs: number;
  body: string;
  stream: boolean;
  /** Give up on one request after this long. */
  requestTimeoutMs?: number;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** The first few distinct failure reasons. */
  errors: string[];
  elapsedMs: number;
  requestsPerSec: number;
  /** Per-request time from send to the last byte, in ms (successful requests only). */
  latenciesMs: number[];
  /** SSE data events received (excluding [DONE]); 0 for non-streaming runs. */
  chunks: number;
  chunksPerSec: number;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
const MAX_ERRORS_KEPT = 5;
/** Bytes of an error body kept in a failure reason. */
const ERROR_BODY_PREVIEW = 160;

/** Counts SSE `data:` events in a complete stream text; reports whether it ended with [DONE]. */
export function countSseEvents(text: string): { events: number; done: boolean } {
  let events = 0;
  let done = false;
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).trimStart())
      .join("\n");
    if (!data) continue;
    if (data === "[DONE]") done = true;
    else events++;
  }
  return { events, done };
}

/** Checks one complete answer; returns the number of streamed chunks, or throws with what was wrong. */
export function checkAnswer(status: number, text: string, stream: boolean): number {
  if (status !== 200) throw new Error(`HTTP ${status}: ${text.replace(/\s+/g, " ").slice(0, ERROR_BODY_PREVIEW)}`);
  if (stream) {
    const { events, done } = countSseEvents(text);
    if (!done || events === 0) throw new Error(`stream ended without [DONE] after ${events} events: ${text.slice(0, ERROR_BODY_PREVIEW)}`);
    return events;
  }
  let parsed: { choices?: unknown[] };
  try {
    parsed = JSON.parse(text) as { choices?: unknown[] };
  } catch {
    throw new Error(`answer is not JSON: ${text.slice(0, ERROR_BODY_PREVIEW)}`);
  }
  if (!Array.isArray(parsed.choices) || parsed.choices.length === 0) throw new Error(`answer has no choices: ${text.slice(0, ERROR_BODY_PREVIEW)}`);
  return 0;
}

function once(agent: http.Agent, target: LoadTarget, o: LoadOptions): Promise<{ ms: number; chunks: number }> {
  const url = new URL(target.path, target.baseUrl);
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(
      url,
      {
        method: "POST",
        agent,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(o.body), ...target.headers },
        timeout: o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("error", reject);
        res.on("end", () => {
          const ms = performance.now() - t0;
          try {
            resolve({ ms, chunks: checkAnswer(res.statusCode ?? 0, Buffer.concat(parts).toString("utf8"), o.stream) });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no complete answer within ${o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(o.body);
  });
}

/** Runs `concurrency` loops of back-to-back requests until maxRequests or maxMs. */
export async function runLoad(target: LoadTarget, o: LoadOptions): Promise<LoadResult> {
  if (!(o.concurrency >= 1 && o.maxRequests >= 1 && o.maxMs > 0)) throw new Error("runLoad needs concurrency >= 1, maxRequests >= 1 and maxMs > 0");
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const latencies: number[] = [];
  const errors = new Set<string>();
  let started = 0;
  let failed = 0;
  let chunks = 0;
  const t0 = performance.now();
  const deadline = t0 + o.maxMs;
  const loop = async () => {
    while (started < o.maxRequests && performance.now() < deadline) {
      started++;
      try {
        const r = await once(agent, target, o);
        latencies.push(r.ms);
        chunks += r.chunks;
      } catch (err) {
        failed++;
        if (errors.size < MAX_ERRORS_KEPT) errors.add((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  const elapsedMs = performance.now() - t0;
  agent.destroy();
  return {
    ok: latencies.length,
    failed,
    errors: [...errors],
    elapsedMs,
    requestsPerSec: (latencies.length * 1000) / elapsedMs,
    latenciesMs: latencies,
    chunks,
    chunksPerSec: (chunks * 1000) / elapsedMs,
  };
}
