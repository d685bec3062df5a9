// What a worker runs requests on. One interface, two kinds: an in-process engine (embedded) and any
// OpenAI-compatible server reached by URL (vLLM, SGLang, llama.cpp server, Ollama).
import type { EmbeddingRequest, FinishReason, GenerationRequest, Usage } from "../../protocol/openai.js";
import type { AnswerDelta } from "../../protocol/answer-chunk.js";
import type { ModelInfo } from "../../protocol/messages.js";
import { CocoonError } from "../../protocol/errors.js";

export interface GenerationResult {
  usage: Usage;
  finishReason: FinishReason;
  /** backend: the engine reported usage; engine: counted by our engine; tokenizer: estimated by our tokenizer. */
  usageSource: "backend" | "engine" | "tokenizer";
}

/** Embedding vectors, one per input in order (float arrays, or base64 float32 when the app asked so). */
export interface EmbeddingResult {
  embeddings: (number[] | string)[];
  /** Prompt tokens only: embeddings produce no completion. */
  usage: Usage;
  usageSource: GenerationResult["usageSource"];
}

/** A transcription: the engine's answer body, and usage (audio tokens as prompt, transcript tokens as completion). */
export interface TranscriptionResult {
  body: string;
  usage: Usage;
  usageSource: GenerationResult["usageSource"];
}

export interface BackendHealth {
  ok: boolean;
  /** Why it is not ok, and what to do, for the status page and the proxy. */
  reason?: string;
}

export interface Backend {
  readonly kind: string;
  /** Models this backend serves now (may change while an upstream comes and goes). */
  models(): ModelInfo[];
  health(): Promise<BackendHealth>;
  /** Registers a listener for changes of models or health (the worker re-announces itself). */
  subscribe?(listener: () => void): void;
  /**
   * Yields deltas (text, or structured: tool calls, logprobs, other choices) in order, in batches: the deltas that became available together (an engine's one socket read),
   * never an empty batch, so the worker seals one chunk per batch instead of one per token while apps still get one
   * event per delta. Returns usage. Stops early (finishReason "cancelled") when signal aborts.
   */
  generate(req: GenerationRequest, signal: AbortSignal): AsyncGenerator<AnswerDelta[], GenerationResult>;
  /**
   * Transcribes audio: `form` is the app's multipart form as it came (sealed end to end), `boundary` its boundary.
   * Returns the engine's answer as it is (JSON or text, per the form's response_format). Absent: no transcriptions.
   */
  transcribe?(form: Uint8Array, boundary: string, maxTokens: number, signal: AbortSignal): Promise<TranscriptionResult>;
  /** Embeds the inputs (absent: this backend serves no embeddings, and the worker says so). */
  embed?(req: EmbeddingRequest, signal: AbortSignal): Promise<EmbeddingResult>;
  /**
   * The engine's own parallel slots and how many requests really hold one now, for the status page: it shows whether
   * the engine agrees with the worker's count of active requests. Only in-process engines know this.
   */
  slots?(): { total: number; busy: number };
  close(): Promise<void>;
}

export class BackendError extends CocoonError {
  constructor(
    override readonly code: "bad_request" | "backend_failed" | "overloaded" | "unsupported_parameter" | "context_length_exceeded",
    message: string,
  ) {
    super(code, message);
    this.name = "BackendError";
  }
}
