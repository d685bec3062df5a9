// One inference request on a worker, from the admitted head to the trailer: open the sealed request (refusing
// replays), check the body against the head and what this worker serves, run it on the backend while streaming
// each batch of deltas (sealed) to the proxy, then end with the usage and the signed receipt. Each step has its own
// method; WorkerNode.onStream admits the request and keeps the running-jobs book.
import type { KeyObject } from "node:crypto";
import type { Stream } from "../protocol/connection.js";
import { MAX_SEALED_REQUEST } from "../protocol/limits.js";
import type { InferenceHead, WorkerReply } from "../protocol/messages.js";
import { encodeAnswerChunk, type AnswerDelta } from "../protocol/answer-chunk.js";
import { ApiError, parseEmbeddingRequest, parseGenerationRequest, parseTranscriptionRequest, type EmbeddingRequest, type GenerationEndpoint, type GenerationRequest } from "../protocol/openai.js";
import { boundaryFromBody, parseMultipart } from "../util/multipart.js";
import { buildReceipt, openRequest, signReceipt, type ResponseSealer, type SignedReceipt } from "../crypto/index.js";
import type { ReplayCache } from "../crypto/replay.js";
import type { NodeObservability } from "../observability/node.js";
import type { Logger } from "../util/log.js";
import { BackendError, type Backend, type GenerationResult } from "./backends/backend.js";
import { countUsage, type RequestCounters } from "../observability/request-counters.js";

/** Keys bound in one attested identity: open sealed requests, sign usage receipts. */
export interface SealingKeys {
  hpkePublicKey: Uint8Array;
  hpkePrivateKey: Uint8Array;
  receiptKey: KeyObject;
}

/** Prices usage for the signed receipt (the Payee of the proxy that sent the request, src/worker/worker.ts). */
export interface ReceiptPricer {
  costOf?(model: string, promptTokens: number, completionTokens: number, coefficient?: number): bigint;
}

/** The worker's request counters (its /status `requests`). chunks: answer chunks sent. */
export interface WorkerRequestStats extends RequestCounters {
  rejected: number;
  chunks: number;
}

/** What a job uses of the worker that runs it. */
export interface JobHost {
  readonly workerId: string;
  readonly backend: Backend;
  /** Current sealing keys first, then the previous identity's (clients may have sealed to it just before a renewal). */
  keySets(): readonly SealingKeys[];
  readonly replayCache: ReplayCache;
  /** Refuse requests that are not sealed (production). */
  readonly requireSealed: boolean;
  readonly priceCoefficient: number | undefined;
  readonly stats: WorkerRequestStats;
  readonly log: Logger;
  readonly obs: NodeObservability;
}

/** A request's body as the job runs it: opened if it was sealed, with what seals its answer and signs its receipt. */
interface OpenedBody {
  raw: Uint8Array;
  responder?: ResponseSealer;
  receiptKey?: KeyObject;
}

type ParsedRequest = GenerationRequest | EmbeddingRequest | { model: string; boundary: string };

/** One admitted request. run() once. */
export class InferenceJob {
  private readonly started = Date.now();
  private firstByteAt = 0;

  /** stop aborts generation: a soft cancel from the proxy, or a hard reset of the stream. */
  constructor(
    private readonly host: JobHost,
    private readonly stream: Stream,
    private readonly head: InferenceHead,
    private readonly payee: ReceiptPricer | undefined,
    private readonly stop: AbortController,
  ) {}

  async run(): Promise<void> {
    const { host, stream } = this;
    try {
      const opened = await this.open(await stream.readAll(MAX_SEALED_REQUEST));
      if (!opened) return;
      const req = this.parse(opened.raw);
      if (!(await this.serves(req.model))) return;
      const result = await this.generate(req, opened);
      if (stream.signal.aborted) {
        // Hard stop: the stream is gone, so is any receipt.
        host.stats.cancelled++;
        return;
      }
      await this.end(result, opened);
    } catch (err) {
      this.onError(err);
    }
  }

  /** Opens a sealed request with the key it was sealed to, refusing a replay; undefined when refused here. */
  private async open(raw: Uint8Array): Promise<OpenedBody | undefined> {
    const { host, head, stream } = this;
    if (!head.sealed) {
      if (host.requireSealed) throw new ApiError(400, `worker ${host.workerId} only serves sealed requests (production policy)`, "invalid_request_error");
      return { raw };
    }
    const keySets = host.keySets();
    if (keySets.length === 0) throw new ApiError(400, `worker ${host.workerId} has no attested sealing key and cannot open sealed requests`, "invalid_request_error");
    let lastError: unknown;
    let opened: Awaited<ReturnType<typeof openRequest>> | undefined;
    let openedWith: SealingKeys | undefined;
    for (const keys of keySets) {
      try {
        opened = await openRequest(raw, { workerId: host.workerId, hpkePrivateKey: keys.hpkePrivateKey, hpkePublicKey: keys.hpkePublicKey }, { requestId: head.requestId, model: head.model });
        openedWith = keys;
        break;
      } catch (err) {
        lastError = err;
      }
    }
    if (!opened || !openedWith) {
      // Sealed to keys this worker does not hold (it restarted with new ones, or the envelope was altered): the
      // proxy tries the other candidates, and the client seals again to a fresh list (code stale_keys).
      host.stats.failed++;
      stream.reset("stale_keys", `worker ${host.workerId} cannot open the sealed request: ${(lastError as Error).message}`);
      return undefined;
    }
    // One answer per sealed request and key, while the key is held (src/crypto/replay.ts): a replaying proxy is refused.
    const seen = host.replayCache.admit(openedWith.hpkePublicKey, opened.replayId, keySets.map((k) => k.hpkePublicKey));
    if (seen !== "fresh") {
      host.stats.rejected++;
      if (seen === "replayed") {
        stream.reset("replayed", `worker ${host.workerId} already opened this sealed request (requestId ${JSON.stringify(head.requestId)}); a replayed request is refused, never answered twice`);
      } else {
        stream.reset("stale_keys", `worker ${host.workerId} has opened ${host.replayCache.maxEntriesPerKey} requests under this HPKE key (its replay-cache limit) and takes new ones only under a renewed key; fetch the candidates again`);
      }
      return undefined;
    }
    return { raw: opened.body, responder: opened.responder, receiptKey: openedWith.receiptKey };
  }

  /** The body, validated against its endpoint's allow-list, naming the model the head named. */
  private parse(raw: Uint8Array): ParsedRequest {
    const { head } = this;
    const req = head.endpoint === "transcriptions" ? parseTranscriptionForm(raw) : parseBody(head.endpoint, raw);
    if (req.model !== head.model) throw new ApiError(400, `body names model ${req.model} but the head says ${head.model}`, "invalid_request_error");
    return req;
  }

  /** Whether this worker serves the model now; refuses the request when not. */
  private async serves(model: string): Promise<boolean> {
    const { host, stream } = this;
    const served = host.backend.models();
    if (served.length === 0) {
      // The engine's last health probe failed (it lists nothing until it answers again): not the request's fault,
      // so a retryable code — the proxy tries another worker — rather than model_not_found, which it would not.
      const health = await host.backend.health();
      host.stats.rejected++;
      stream.reset("backend_failed", `worker ${host.workerId}'s engine is not answering now${health.reason ? ` (${health.reason})` : ""}; try another worker`);
      return false;
    }
    if (!served.some((m) => m.id === model)) {
      stream.reset("model_not_found", `worker ${host.workerId} does not serve ${model}`);
      host.stats.rejected++;
      return false;
    }
    return true;
  }

  /** Runs the request on the backend, sending each batch of deltas as it comes; the engine's usage at the end. */
  private async generate(req: ParsedRequest, body: OpenedBody): Promise<GenerationResult> {
    const { host, head } = this;
    const backend = host.backend;
    // Every choice may run to max_tokens: the proxy admitted (and reserved payment for) their sum.
    const budget = "maxTokens" in req ? req.maxTokens * (req.n ?? 1) : 1;
    if ("maxTokens" in req && budget > head.maxTokens) throw new ApiError(400, `max_tokens ${budget} (for all choices) exceeds the ${head.maxTokens} the proxy admitted`, "invalid_request_error");
    const signal = this.stop.signal;
    // Cancelled before it started: nothing is generated, and the answer still ends properly (zero usage).
    const gen = signal.aborted
      ? notStarted()
      : "maxTokens" in req
        ? backend.generate(req, signal)
        : "input" in req
          ? embedAnswer(backend, req, signal, host.workerId)
          : transcribeAnswer(backend, body.raw, req.boundary, head.maxTokens, signal, host.workerId);
    try {
      for (;;) {
        const step = await gen.next();
        if (step.done) return step.value;
        await this.onDeltas(step.value, body.responder);
      }
    } finally {
      // Runs the backend's cleanup (frees the engine sequence) even when the stream failed mid-way.
      await gen.return(undefined as never).catch(() => {});
    }
  }

  /** One chunk per batch of deltas (those the engine produced together); the client splits them again. */
  private async onDeltas(batch: AnswerDelta[], responder: ResponseSealer | undefined): Promise<void> {
    if (!this.firstByteAt) this.firstByteAt = Date.now();
    const deltas = encodeAnswerChunk(batch);
    this.host.stats.chunks++;
    this.reply();
    await this.stream.write(responder ? responder.sealChunk(deltas, false) : deltas);
  }

  /** The answer is complete: count it, send the final sealed chunk and the trailer with usage and signed receipt. */
  private async end(result: GenerationResult, body: OpenedBody): Promise<void> {
    const { host, head, stream } = this;
    if (result.finishReason === "cancelled") host.stats.cancelled++;
    else host.stats.completed++;
    countUsage(host.stats, result.usage);
    let receipt: SignedReceipt | undefined;
    if (body.responder) {
      // The final sealed chunk tells the client the answer is complete (truncation is detectable).
      host.stats.chunks++;
      this.reply();
      await stream.write(body.responder.sealChunk(encodeAnswerChunk([], result.finishReason), true));
      receipt = this.receipt(result, body.responder, body.receiptKey!);
    }
    this.reply();
    host.obs.request({ model: head.model, requestId: head.requestId, outcome: result.finishReason === "cancelled" ? "cancelled" : "completed", ttftMs: (this.firstByteAt || Date.now()) - this.started, totalMs: Date.now() - this.started, promptTokens: result.usage.prompt_tokens, completionTokens: result.usage.completion_tokens });
    stream.end({
      ...(receipt ? { receipt } : {}),
      usage: result.usage,
      finishReason: result.finishReason,
      usageSource: result.usageSource,
      timings: { ttftMs: this.firstByteAt ? this.firstByteAt - this.started : Date.now() - this.started, totalMs: Date.now() - this.started },
    });
  }

  /** The usage receipt for a sealed request, priced by the proxy's payee and signed with the key it was sealed to. */
  private receipt(result: GenerationResult, responder: ResponseSealer, receiptKey: KeyObject): SignedReceipt {
    const { head } = this;
    const r = buildReceipt(responder, {
      requestId: head.requestId,
      model: head.model,
      promptTokens: result.usage.prompt_tokens,
      completionTokens: result.usage.completion_tokens,
      costNano: this.payee?.costOf?.(head.model, result.usage.prompt_tokens, result.usage.completion_tokens, this.host.priceCoefficient) ?? 0n,
    });
    return signReceipt(r, receiptKey);
  }

  /** The request failed: the proxy gets a code it can act on (retry elsewhere or report), unless the stream is gone. */
  private onError(err: unknown): void {
    const { host, stream } = this;
    if (stream.signal.aborted) {
      host.stats.cancelled++;
      return;
    }
    host.stats.failed++;
    if (err instanceof ApiError) stream.reset(err.code === "unsupported_parameter" || err.code === "context_length_exceeded" ? err.code : "bad_request", err.message);
    else if (err instanceof BackendError) stream.reset(err.code, err.message);
    else {
      host.log.error(`request ${this.head.requestId} failed: ${(err as Error).stack ?? err}`);
      stream.reset("backend_failed", `worker ${host.workerId} failed: ${(err as Error).message}`);
    }
  }

  /** The reply head goes out with the first chunk (one TLS write, not two): a request whose engine fails before that
   * can still be retried elsewhere by the proxy, which retries only before a reply. Stream.reply sends once. */
  private reply(): void {
    this.stream.reply({ ok: true, worker: this.host.workerId } satisfies WorkerReply);
  }
}

/** A JSON request body (chat, completions, embeddings), validated against the endpoint's allow-list. */
function parseBody(endpoint: GenerationEndpoint | "embeddings", raw: Uint8Array) {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"));
  } catch {
    throw new ApiError(400, "request body is not valid JSON", "invalid_request_error");
  }
  return endpoint === "embeddings" ? parseEmbeddingRequest(body) : parseGenerationRequest(endpoint, body);
}

/** A transcription form (multipart), validated as the client did; its boundary is on its first line. */
function parseTranscriptionForm(raw: Uint8Array): { model: string; boundary: string } {
  const boundary = boundaryFromBody(raw);
  if (!boundary) throw new ApiError(400, "the transcription request is not a multipart form", "invalid_request_error");
  let parts;
  try {
    parts = parseMultipart(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), boundary);
  } catch (err) {
    throw new ApiError(400, `the transcription form is malformed: ${(err as Error).message}`, "invalid_request_error");
  }
  return { model: parseTranscriptionRequest(parts).model, boundary };
}

/** A transcription answer: the engine's body as text deltas, in chunks that each fit one frame. */
async function* transcribeAnswer(backend: Backend, form: Uint8Array, boundary: string, maxTokens: number, signal: AbortSignal, workerId: string): AsyncGenerator<AnswerDelta[], GenerationResult> {
  if (!backend.transcribe) throw new BackendError("unsupported_parameter", `Unsupported parameter: 'file': worker ${workerId}'s ${backend.kind} engine serves no audio transcriptions; use a model served by --backend openai in front of an engine that has /v1/audio/transcriptions.`);
  const r = await backend.transcribe(form, boundary, maxTokens, signal);
  // 8 Ki characters is at most 48 KiB of JSON even if every one needs escaping: one frame.
  for (let i = 0; i < r.body.length; i += 8192) yield [r.body.slice(i, i + 8192)];
  return { usage: r.usage, finishReason: "stop", usageSource: r.usageSource };
}

/** Most bytes of embedding data in one answer chunk: a chunk must travel as one frame (protocol/connection.ts). */
const EMBEDDING_CHUNK_BYTES = 48 * 1024;

/**
 * An embeddings answer as chunks of deltas, one per input vector, in order: base64 of little-endian float32 on the
 * wire (a quarter of the size of JSON numbers), turned back into numbers by the client when the app wants floats.
 */
async function* embedAnswer(backend: Backend, req: EmbeddingRequest, signal: AbortSignal, workerId: string): AsyncGenerator<AnswerDelta[], GenerationResult> {
  if (!backend.embed) throw new BackendError("unsupported_parameter", `worker ${workerId} serves no embeddings for ${req.model} (its ${backend.kind} engine has none); use a model served by an embeddings engine.`);
  const r = await backend.embed(req, signal);
  let batch: AnswerDelta[] = [];
  let bytes = 0;
  for (const [index, vector] of r.embeddings.entries()) {
    const embedding = typeof vector === "string" ? vector : float32Base64(vector);
    if (embedding.length > EMBEDDING_CHUNK_BYTES) throw new BackendError("backend_failed", `an embedding of ${vector.length} dimensions is larger than one answer chunk carries; ask for fewer 'dimensions'.`);
    if (bytes + embedding.length > EMBEDDING_CHUNK_BYTES) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push({ index, embedding });
    bytes += embedding.length + 32;
  }
  if (batch.length) yield batch;
  return { usage: r.usage, finishReason: "stop", usageSource: r.usageSource };
}

function float32Base64(vector: readonly number[]): string {
  const f = new Float32Array(vector);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("base64");
}

/** The "generation" of a request cancelled before it reached the backend: no text, zero usage. */
// eslint-disable-next-line require-yield
async function* notStarted(): AsyncGenerator<AnswerDelta[], GenerationResult> {
  return { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, finishReason: "cancelled", usageSource: "engine" };
}
