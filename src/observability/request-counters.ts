// The request counters every role keeps for its status page (client, proxy, worker): requests taken, how they
// ended, tokens served. Each role adds its own (retries, receipts, chunks, ...) and shows them its own way under
// `requests`; `tokens` has one shape everywhere.
import type { Usage } from "../protocol/openai.js";

export interface RequestCounters {
  /** Requests received: from apps at the client, inference streams at proxy and worker. */
  requests: number;
  completed: number;
  failed: number;
  cancelled: number;
  promptTokens: number;
  completionTokens: number;
}

export function newRequestCounters(): RequestCounters {
  return { requests: 0, completed: 0, failed: 0, cancelled: 0, promptTokens: 0, completionTokens: 0 };
}

/** Counts the tokens of one answer. */
export function countUsage(c: RequestCounters, usage: Usage): void {
  c.promptTokens += usage.prompt_tokens;
  c.completionTokens += usage.completion_tokens;
}

/** The status page's `tokens`. */
export function tokensView(c: RequestCounters): { prompt: number; completion: number } {
  return { prompt: c.promptTokens, completion: c.completionTokens };
}
