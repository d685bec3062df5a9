// Backend for any OpenAI-compatible engine reached by URL (vLLM, SGLang, llama.cpp server, Ollama).
// Streams with SSE parsed properly; asks for usage in the stream; falls back to counting tokens with a
// real BPE tokenizer when the engine reports none. Probes /v1/models and reports itself down meanwhile.
import http from "node:http";
import https from "node:https";
import type { EmbeddingRequest, FinishReason, GenerationRequest } from "../../protocol/openai.js";
import type { AnswerDelta, StructuredDelta } from "../../protocol/answer-chunk.js";
import type { ModelInfo } from "../../protocol/messages.js";
import { parseSseBatches } from "../../protocol/sse.js";
import { BackendError, type Backend, type BackendHealth, type EmbeddingResult, type GenerationResult, type TranscriptionResult } from "./backend.js";
import { countTokens } from "./tokenizer.js";

export const PROBE_INTERVAL_MS = 5_000;
/** Concurrent connections to the engine (one per streaming request in flight). */
const UPSTREAM_MAX_SOCKETS = 1024;
const PROBE_TIMEOUT_MS = 3_000;
/** Largest non-streamed answer read from the engine (an embeddings list). */
const MAX_UPSTREAM_ANSWER_BYTES = 64 * 1024 * 1024;

export interface OpenAiBackendOptions {
  /** Base URL of the engine, with or without a trailing /v1. */
  upstream: string;
  apiKey?: string;
  /** Serve only this model (default: every model the engine lists). */
  model?: string;
  /** Weights digest of `model` (--model-dir / --model-digest): bound into the worker's claims and priced by it. */
  modelDigest?: string;
  probeIntervalMs?: number;
}

export function normalizeBaseUrl(url: string): string {
  const trimmed = url.replace(/\/+$/, "");
  return trimmed.endsWith("/v1") ? trimmed : `${trimmed}/v1`;
}

export class OpenAiBackend implements Backend {
  readonly kind = "openai";
  private readonly base: string;
  private served: ModelInfo[] = [];
  private state: BackendHealth = { ok: false, reason: "not probed yet" };
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly opts: OpenAiBackendOptions) {
    this.base = normalizeBaseUrl(opts.upstream);
  }

  /** Probes once now, then periodically. */
  async start(): Promise<void> {
    await this.probe();
    this.timer = setInterval(() => void this.probe(), this.opts.probeIntervalMs ?? PROBE_INTERVAL_MS);
    this.timer.unref();
  }

  models(): ModelInfo[] {
    return this.state.ok ? this.served : [];
  }

  async health(): Promise<BackendHealth> {
    return this.state;
  }

  subscribe(listener: () => void): void {
    this.listeners.push(listener);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { "content-type": "application/json" };
    if (this.opts.apiKey) h.authorization = `Bearer ${this.opts.apiKey}`;
    return h;
  }

  async probe(): Promise<void> {
    const before = JSON.stringify([this.state, this.served]);
    try {
      const res = await fetch(`${this.base}/models`, { headers: this.headers(), signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`GET ${this.base}/models answered HTTP ${res.status}`);
      const body = (await res.json()) as { data?: { id?: unknown }[] };
      const ids = (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
      const wanted = this.opts.model ? ids.filter((id) => id === this.opts.model) : ids;
      if (wanted.length === 0) {
        throw new Error(this.opts.model ? `the engine does not list model ${this.opts.model} (it lists: ${ids.join(", ") || "none"})` : "the engine lists no models");
      }
      this.served = wanted.map((id) => (this.opts.modelDigest && id === this.opts.model ? { id, digest: this.opts.modelDigest } : { id }));
      this.state = { ok: true };
    } catch (err) {
      const msg = (err as Error).name === "TimeoutError" ? `no answer within ${PROBE_TIMEOUT_MS} ms` : (err as Error).message;
      this.state = { ok: false, reason: `upstream ${this.base} is unavailable: ${msg}. Start the engine or fix --upstream.` };
    }
    if (JSON.stringify([this.state, this.served]) !== before) for (const l of this.listeners) l();
  }

  private body(req: GenerationRequest): Record<string, unknown> {
    if (req.body) {
      // The app's own fields go to the engine unchanged (tools, response_format, logprobs, n, ...): only streaming
      // with usage is ours, and the token budget the proxy admitted when the app left it to the default.
      const { stream_options: _so, stream: _s, ...app } = req.body;
      const body: Record<string, unknown> = { ...app, model: req.model, stream: true, stream_options: { include_usage: true } };
      if (body.max_tokens == null && body.max_completion_tokens == null) body.max_tokens = req.maxTokens;
      return body;
    }
    const body: Record<string, unknown> = {
      model: req.model,
      max_tokens: req.maxTokens,
      temperature: req.temperature,
      stream: true,
      stream_options: { include_usage: true },
    };
    if (req.topP !== undefined) body.top_p = req.topP;
    if (req.topK !== undefined) body.top_k = req.topK;
    if (req.minP !== undefined) body.min_p = req.minP;
    if (req.seed !== undefined) body.seed = req.seed;
    if (req.stop.length) body.stop = req.stop;
    if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
    if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
    if (req.endpoint === "chat") body.messages = req.messages;
    else body.prompt = req.prompt;
    return body;
  }

  /**
   * Audio transcription, passed through: the app's multipart form goes to the engine byte for byte. Usage is the
   * engine's (audio tokens as prompt, transcript tokens as completion) or, when it reports none, the transcript
   * counted by our tokenizer; never more than the budget the proxy admitted.
   */
  async transcribe(form: Uint8Array, boundary: string, maxTokens: number, signal: AbortSignal): Promise<TranscriptionResult> {
    let res: http.IncomingMessage;
    try {
      res = await this.post("/audio/transcriptions", form, signal, `multipart/form-data; boundary=${boundary}`);
    } catch (err) {
      void this.probe();
      throw new BackendError("backend_failed", `upstream ${this.base} unreachable: ${(err as Error).message}`);
    }
    const body = await readCapped(res, MAX_UPSTREAM_ANSWER_BYTES);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw upstreamStatusError(status, body);
    let reported: { input_tokens?: unknown; output_tokens?: unknown } | undefined;
    let text = body;
    try {
      const j = JSON.parse(body) as { text?: unknown; usage?: typeof reported };
      if (typeof j.text === "string") text = j.text;
      reported = j.usage ?? undefined;
    } catch {
      // text, srt or vtt: the body is the transcript
    }
    const int = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined);
    const input = int(reported?.input_tokens);
    const output = int(reported?.output_tokens);
    const prompt = input ?? 0;
    const completion = Math.min(output ?? countTokens(text), maxTokens);
    return { body, usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }, usageSource: output !== undefined ? "backend" : "tokenizer" };
  }

  /** POSTs with node:http on a keep-alive agent: the hot path, cheaper than fetch's web streams. */
  private post(path: string, body: string | Uint8Array, signal: AbortSignal, contentType = "application/json"): Promise<http.IncomingMessage> {
    let url = this.urls.get(path);
    if (!url) this.urls.set(path, (url = new URL(`${this.base}${path}`)));
    const secure = url.protocol === "https:";
    return new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, {
        method: "POST",
        headers: { ...this.headers(), "content-type": contentType, "content-length": typeof body === "string" ? Buffer.byteLength(body) : body.byteLength },
        agent: secure ? this.httpsAgent : this.httpAgent,
        signal,
      });
      req.once("response", resolve);
      req.once("error", reject);
      req.end(body);
    });
  }

  /** Parsed once per path: a URL per request is measurable work on the hot path. */
  private readonly urls = new Map<string, URL>();
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: UPSTREAM_MAX_SOCKETS });
  private readonly httpsAgent = new https.Agent({ keepAlive: true, maxSockets: UPSTREAM_MAX_SOCKETS });

  /** Embeddings, passed through to the engine's /v1/embeddings (as floats; the worker packs them for the way back). */
  async embed(req: EmbeddingRequest, signal: AbortSignal): Promise<EmbeddingResult> {
    let res: http.IncomingMessage;
    try {
      res = await this.post("/embeddings", JSON.stringify({ ...req.body, encoding_format: "float" }), signal);
    } catch (err) {
      void this.probe();
      throw new BackendError("backend_failed", `upstream ${this.base} unreachable: ${(err as Error).message}`);
    }
    const text = await readCapped(res, MAX_UPSTREAM_ANSWER_BYTES);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw upstreamStatusError(status, text);
    let body: { data?: { index?: unknown; embedding?: unknown }[]; usage?: { prompt_tokens?: unknown } };
    try {
      body = JSON.parse(text);
    } catch {
      throw new BackendError("backend_failed", `upstream sent an embeddings answer that is not JSON: ${text.slice(0, 200)}`);
    }
    const data = Array.isArray(body.data) ? body.data : [];
    const embeddings: number[][] = [];
    for (const d of data) {
      const i = typeof d.index === "number" ? d.index : embeddings.length;
      if (!Array.isArray(d.embedding) || !d.embedding.every((x) => typeof x === "number") || i < 0 || i >= req.input.length) {
        throw new BackendError("backend_failed", "upstream sent a malformed embeddings answer (expected data[].embedding as arrays of numbers, one per input)");
      }
      embeddings[i] = d.embedding as number[];
    }
    if (embeddings.length !== req.input.length || embeddings.some((e) => e === undefined)) {
      throw new BackendError("backend_failed", `upstream sent ${data.length} embeddings for ${req.input.length} inputs`);
    }
    const reported = body.usage?.prompt_tokens;
    const prompt = typeof reported === "number" && Number.isInteger(reported) && reported >= 0 ? reported : req.input.reduce((n, s) => n + (typeof s === "string" ? countTokens(s) : s.length), 0);
    return { embeddings, usage: { prompt_tokens: prompt, completion_tokens: 0, total_tokens: prompt }, usageSource: typeof reported === "number" ? "backend" : "tokenizer" };
  }

  async *generate(req: GenerationRequest, signal: AbortSignal): AsyncGenerator<AnswerDelta[], GenerationResult> {
    const path = req.endpoint === "chat" ? "/chat/completions" : "/completions";
    let res: http.IncomingMessage;
    try {
      res = await this.post(path, JSON.stringify(this.body(req)), signal);
    } catch (err) {
      if (signal.aborted) return { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, finishReason: "cancelled", usageSource: "tokenizer" };
      void this.probe();
      throw new BackendError("backend_failed", `upstream ${this.base} unreachable: ${(err as Error).message}`);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw upstreamStatusError(status, await readCapped(res, 500));
    let usage: GenerationResult["usage"] | undefined;
    let finish: FinishReason = "stop";
    let completionText = "";
    let sawDone = false;
    // One event's JSON: the deltas to keep (text of choice 0 as plain strings, the rest structured), usage or finish
    // reasons to note, or an error to raise.
    const severalChoices = (req.n ?? 1) > 1;
    const take = (data: string, batch: AnswerDelta[]): void => {
      let chunk: UpstreamChunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        throw new BackendError("backend_failed", `upstream sent an SSE event that is not JSON: ${data.slice(0, 200)}`);
      }
      if (chunk.error) throw new BackendError("backend_failed", `upstream error mid-stream: ${chunk.error.message ?? "unknown"}`);
      for (const choice of Array.isArray(chunk.choices) ? chunk.choices : []) {
        const index = typeof choice.index === "number" && Number.isInteger(choice.index) && choice.index >= 0 ? choice.index : 0;
        const text = typeof choice.delta?.content === "string" ? choice.delta.content : typeof choice.text === "string" ? choice.text : "";
        const reason = finishOf(choice.finish_reason);
        if (index === 0) {
          completionText += text;
          if (reason) finish = reason;
        }
        const d: StructuredDelta = {};
        if (index) d.index = index;
        if (text) d.content = text;
        if (typeof choice.delta?.refusal === "string" && choice.delta.refusal) d.refusal = choice.delta.refusal;
        const calls = toolCallDeltas(choice.delta?.tool_calls);
        if (calls.length) d.tool_calls = calls;
        if (choice.logprobs && typeof choice.logprobs === "object") d.logprobs = choice.logprobs as StructuredDelta["logprobs"];
        if (reason && (severalChoices || index > 0)) d.finish_reason = reason;
        const keys = Object.keys(d);
        if (keys.length === 1 && keys[0] === "content") batch.push(text);
        else if (keys.length && !(keys.length === 1 && keys[0] === "index")) batch.push(d);
      }
      const u = chunk.usage;
      if (u && typeof u.prompt_tokens === "number" && typeof u.completion_tokens === "number") {
        usage = { prompt_tokens: u.prompt_tokens, completion_tokens: u.completion_tokens, total_tokens: u.prompt_tokens + u.completion_tokens };
      }
    };
    try {
      // destroyOnReturn: false, so that leaving at [DONE] does not destroy the response: the rest (normally just the
      // end of the body) drains below and the socket goes back to the keep-alive pool instead of being closed.
      for await (const events of parseSseBatches(res.iterator({ destroyOnReturn: false }))) {
        // Every delta of one read goes out as one batch (one sealed chunk), in order.
        const batch: AnswerDelta[] = [];
        for (const ev of events) {
          if (ev.data === "[DONE]") {
            sawDone = true;
            break;
          }
          take(ev.data, batch);
        }
        if (batch.length) yield batch;
        if (sawDone) break;
      }
    } catch (err) {
      if (signal.aborted) return cancelled();
      if (err instanceof BackendError) throw err;
      throw new BackendError("backend_failed", `upstream stream broke: ${(err as Error).message}`);
    } finally {
      // After [DONE], drain the end of the body (on the next turn: the iterator's 'readable' listener is only
      // released then) so the socket is reused. Left early otherwise (an error, or the caller stopped reading): close it.
      if (sawDone) setImmediate(() => res.resume());
      else if (!res.readableEnded) res.destroy();
    }
    if (usage) return { usage, finishReason: finish, usageSource: "backend" };
    const promptText = req.endpoint === "chat" ? req.messages!.map((m) => m.content).join("\n") : req.prompt ?? "";
    const p = countTokens(promptText);
    const c = Math.min(countTokens(completionText), req.maxTokens);
    return { usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c }, finishReason: finish, usageSource: "tokenizer" };
    // (A stream's logprobs and other choices are relayed as the engine sent them; without usage only choice 0's text is counted.)

    // Cancelled mid-answer: the engine read the prompt and produced what was delivered so far; that is what is billed
    // (docs/payments.md, "cancelled requests"), counted by our tokenizer since the engine never sent its usage.
    function cancelled(): GenerationResult {
      const p = countTokens(req.endpoint === "chat" ? req.messages!.map((m) => m.content).join("\n") : req.prompt ?? "");
      // Never more than the engine may have produced (our tokenizer can count more than the model's for some text).
      const c = Math.min(countTokens(completionText), req.maxTokens);
      return { usage: { prompt_tokens: p, completion_tokens: c, total_tokens: p + c }, finishReason: "cancelled", usageSource: "tokenizer" };
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** One streamed event from an OpenAI-compatible engine (untrusted: every field is checked before use). */
interface UpstreamChunk {
  choices?: {
    index?: unknown;
    delta?: { content?: unknown; refusal?: unknown; tool_calls?: unknown };
    text?: unknown;
    logprobs?: unknown;
    finish_reason?: unknown;
  }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
  error?: { message?: string };
}

function finishOf(r: unknown): FinishReason | undefined {
  if (r === "function_call") return "tool_calls";
  return r === "stop" || r === "length" || r === "tool_calls" || r === "content_filter" ? r : undefined;
}

/** Tool-call fragments of a stream delta, keeping only well-formed fields. */
function toolCallDeltas(v: unknown): NonNullable<StructuredDelta["tool_calls"]> {
  if (!Array.isArray(v)) return [];
  return v.flatMap((t: { index?: unknown; id?: unknown; function?: { name?: unknown; arguments?: unknown } }, i) => {
    if (!t || typeof t !== "object") return [];
    const fn = t.function && typeof t.function === "object" ? t.function : undefined;
    return [
      {
        index: typeof t.index === "number" && Number.isInteger(t.index) && t.index >= 0 ? t.index : i,
        ...(typeof t.id === "string" ? { id: t.id, type: "function" as const } : {}),
        ...(fn ? { function: { ...(typeof fn.name === "string" ? { name: fn.name } : {}), ...(typeof fn.arguments === "string" ? { arguments: fn.arguments } : {}) } } : {}),
      },
    ];
  });
}

/** An engine's refusal as the error the app should see: its 4xx are the request's fault (not retried elsewhere). */
function upstreamStatusError(status: number, detail: string): BackendError {
  const code = status === 429 ? "overloaded" : status >= 400 && status < 500 ? "bad_request" : "backend_failed";
  return new BackendError(code, `upstream answered HTTP ${status}: ${detail.slice(0, 500)}`);
}

async function readCapped(res: http.IncomingMessage, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const c of res) {
    total += (c as Buffer).length;
    if (total > limit) {
      res.destroy();
      if (limit <= 500) break;
      throw new BackendError("backend_failed", `upstream answer exceeds ${limit} bytes`);
    }
    parts.push(c as Buffer);
  }
  return Buffer.concat(parts).toString("utf8").slice(0, total > limit ? limit : undefined);
}
