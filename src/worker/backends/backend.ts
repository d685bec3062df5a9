// What a worker runs requests on. One interface, two kinds: an in-process engine (embedded) and any
// OpenAI-compatible server reached by URL (vLLM, SGLang, llama.cpp server, Ollama).
import type { FinishReason, GenerationRequest, Usage } from "../../protocol/openai.js";
import type { ModelInfo } from "../../protocol/messages.js";
import { CocoonError } from "../../protocol/errors.js";

export interface GenerationResult {
  usage: Usage;
  finishReason: FinishReason;
  /** backend: the engine reported usage; engine: counted by our engine; tokenizer: estimated by our tokenizer. */
  usageSource: "backend" | "engine" | "tokenizer";
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
   * Yields text deltas in order, in batches: the deltas that became available together (an engine's one socket read),
   * never an empty batch, so the worker seals one chunk per batch instead of one per token while apps still get one
   * event per delta. Returns usage. Stops early (finishReason "cancelled") when signal aborts.
   */
  generate(req: GenerationRequest, signal: AbortSignal): AsyncGenerator<string[], GenerationResult>;
  /**
   * The engine's own parallel slots and how many requests really hold one now, for the status page: it shows whether
   * the engine agrees with the worker's count of active requests. Only in-process engines know this.
   */
  slots?(): { total: number; busy: number };
  close(): Promise<void>;
}

export class BackendError extends CocoonError {
  constructor(
    override readonly code: "bad_request" | "backend_failed" | "overloaded",
    message: string,
  ) {
    super(code, message);
    this.name = "BackendError";
  }
}
