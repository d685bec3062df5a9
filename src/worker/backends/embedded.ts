// The embedded backend: a real llama.cpp engine in-process on CPU through node-llama-cpp (prebuilt addon,
// never compiled or downloaded at run time). Generation is pulled token by token from the sequence's
// evaluate() generator, so a slow reader really pauses the engine (backpressure), and abort stops it.
//
// Slots: all `capacity` sequences are created once at load and handed out from our own free list. node-llama-cpp
// returns a disposed sequence to its pool only later (asynchronously), so getSequence() per request failed with
// "No sequences left" right after cancels while fewer than `capacity` requests ran (issue #21).
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import type { GenerationRequest } from "../../protocol/openai.js";
import type { ModelInfo } from "../../protocol/messages.js";
import { BackendError, type Backend, type BackendHealth, type GenerationResult } from "./backend.js";
import { renderTranscript } from "./transcript.js";

/** The model this project trains and ships (models/README.md). */
export const DEFAULT_MODEL_FILE = fileURLToPath(new URL("../../../models/kjv-char-llama.gguf", import.meta.url));

export interface EmbeddedOptions {
  modelFile?: string;
  /** Name announced to the network; defaults to the file name without extension. */
  modelName?: string;
  /** Parallel sequences (= max active requests). */
  capacity?: number;
  threads?: number;
  contextSize?: number;
}

let llamaPromise: Promise<Llama> | undefined;
/** One engine per process: loading the native addon is the slow part (~1 s). */
function loadLlama(): Promise<Llama> {
  llamaPromise ??= import("node-llama-cpp").then(({ getLlama }) =>
    getLlama({ gpu: false, build: "never", logLevel: "error" as never, progressLogs: false }),
  );
  return llamaPromise;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export class EmbeddedBackend implements Backend {
  readonly kind = "embedded";
  /** Sequences not held by a request; taken from the front and returned to the back, so slots are used in turn. */
  private readonly free: LlamaContextSequence[];
  private closed = false;

  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly info: ModelInfo,
    /** Every sequence this backend owns (= capacity, unless one had to be retired and could not be replaced). */
    private readonly sequences: LlamaContextSequence[],
    private readonly hasChatTemplate: boolean,
  ) {
    this.free = [...sequences];
  }

  static async load(opts: EmbeddedOptions = {}): Promise<EmbeddedBackend> {
    const file = opts.modelFile ?? DEFAULT_MODEL_FILE;
    const capacity = opts.capacity ?? 4;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new BackendError("backend_failed", `capacity must be a positive whole number of parallel sequences, got ${capacity}. Pass a capacity of 1 or more.`);
    }
    let llama: Llama;
    try {
      llama = await loadLlama();
    } catch (err) {
      throw new BackendError("backend_failed", `could not start the llama.cpp engine: ${(err as Error).message}. Reinstall with \`npm ci\` so the prebuilt @node-llama-cpp/linux-x64 addon is present.`);
    }
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: file });
    } catch (err) {
      throw new BackendError("backend_failed", `could not load model file ${file}: ${(err as Error).message}. Pass --model-file with a readable GGUF file.`);
    }
    const trainCtx = model.trainContextSize;
    const contextSize = Math.min(opts.contextSize ?? trainCtx, trainCtx) * capacity;
    const context = await model.createContext({
      sequences: capacity,
      contextSize,
      threads: opts.threads ?? 1,
    });
    const sequences = Array.from({ length: capacity }, () => context.getSequence());
    const name = opts.modelName ?? basename(file).replace(/\.gguf$/i, "");
    const digest = await sha256File(file);
    const meta = model.fileInfo.metadata as unknown as { tokenizer?: { chat_template?: string } };
    const info: ModelInfo = { id: name, contextLength: trainCtx, digest };
    return new EmbeddedBackend(model, context, info, sequences, typeof meta.tokenizer?.chat_template === "string");
  }

  models(): ModelInfo[] {
    return [this.info];
  }

  async health(): Promise<BackendHealth> {
    return { ok: true };
  }

  /** The engine's sequences and how many requests really hold one now. */
  slots(): { total: number; busy: number } {
    return { total: this.sequences.length, busy: this.sequences.length - this.free.length };
  }

  /** Tokens of the prompt, with BOS where the model expects one. */
  tokenizePrompt(req: GenerationRequest): Token[] {
    let tokens: Token[];
    if (req.messages && this.hasChatTemplate) {
      tokens = this.chatTemplateTokens(req);
    } else {
      const text = req.messages ? renderTranscript(req.messages) : req.prompt ?? "";
      tokens = this.model.tokenize(text);
      const bos = this.model.tokens.bos;
      if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens = [bos, ...tokens];
    }
    return tokens;
  }

  private chatTemplateTokens(req: GenerationRequest): Token[] {
    // Lazy import: only real chat models need the chat-wrapper machinery.
    const history = [
      ...req.messages!.map((m) =>
        m.role === "system"
          ? ({ type: "system", text: m.content } as const)
          : m.role === "assistant"
            ? ({ type: "model", response: [m.content] } as const)
            : ({ type: "user", text: m.content } as const),
      ),
      { type: "model", response: [] } as const,
    ];
    const wrapper = this.chatWrapper!;
    const { contextText } = wrapper.generateContextState({ chatHistory: history as never });
    return contextText.tokenize(this.model.tokenizer);
  }

  private chatWrapper: { generateContextState(o: { chatHistory: never }): { contextText: { tokenize(t: unknown): Token[] } } } | undefined;

  async prepare(): Promise<void> {
    if (this.hasChatTemplate && !this.chatWrapper) {
      const { resolveChatWrapper } = await import("node-llama-cpp");
      this.chatWrapper = resolveChatWrapper(this.model) as never;
    }
  }

  async *generate(req: GenerationRequest, signal: AbortSignal): AsyncGenerator<string[], GenerationResult> {
    if (req.model !== this.info.id) throw new BackendError("bad_request", `this worker serves ${this.info.id}, not ${req.model}`);
    if (this.closed) throw new BackendError("backend_failed", "the embedded backend is closed (the worker is shutting down); send the request to another worker.");
    // Only chat models need the async preparation; skipping the await otherwise keeps validation and slot taking in
    // the caller's first next() call, so requests arriving together are admitted in arrival order.
    if (this.hasChatTemplate && !this.chatWrapper) await this.prepare();
    const prompt = this.tokenizePrompt(req);
    const ctxLen = this.info.contextLength ?? 0;
    if (prompt.length >= ctxLen) {
      throw new BackendError("bad_request", `the prompt is ${prompt.length} tokens; this model's context holds ${ctxLen}. Shorten the prompt.`);
    }
    const usage = (completion: number) => ({ prompt_tokens: prompt.length, completion_tokens: completion, total_tokens: prompt.length + completion });
    // Cancelled before it started: nothing to run, so it needs no slot (and is never refused as overloaded).
    if (signal.aborted) return { usage: usage(0), finishReason: "cancelled", usageSource: "engine" };
    // Check and take in one synchronous step: no other request can slip in between.
    const sequence = this.free.shift();
    if (!sequence) {
      throw new BackendError("overloaded", `all ${this.sequences.length} sequences are busy; retry later or on another worker.`);
    }
    let healthy = true;
    const budget = Math.min(req.maxTokens, ctxLen - prompt.length);
    const generated: Token[] = [];
    let emittedChars = 0;
    let text = "";
    let finishReason: GenerationResult["finishReason"] = "length";
    // Everything after taking the slot is inside try/finally, so every way out (end, abort, the consumer's early
    // return() or throw(), an engine error) gives it back before the generator completes.
    try {
      // A pooled sequence still holds its last request's tokens; start from an empty state so the answer depends
      // on this prompt only (same output as a fresh sequence).
      try {
        await sequence.clearHistory();
      } catch (err) {
        healthy = false;
        throw new BackendError("backend_failed", `could not reset an engine sequence for reuse: ${(err as Error).message}. Retry; if it persists, restart the worker.`);
      }
      if (signal.aborted) {
        finishReason = "cancelled";
      } else {
        const evaluation = sequence.evaluate(prompt, {
          temperature: req.temperature,
          topK: req.topK,
          topP: req.topP,
          minP: req.minP,
          seed: req.seed ?? (req.temperature > 0 ? (Math.random() * 2 ** 31) | 0 : undefined),
          repeatPenalty:
            req.presencePenalty || req.frequencyPenalty
              ? { punishTokens: () => generated, presencePenalty: req.presencePenalty, frequencyPenalty: req.frequencyPenalty }
              : undefined,
        });
        for await (const token of evaluation) {
          if (signal.aborted) {
            finishReason = "cancelled";
            break;
          }
          if (this.model.isEogToken(token)) {
            finishReason = "stop";
            break;
          }
          generated.push(token);
          text = this.model.detokenize(generated);
          // Hold back an incomplete UTF-8 sequence and any text that may be the start of a stop string.
          let safeEnd = text.endsWith("\uFFFD") ? text.length - 1 : text.length;
          const stopHit = findStop(text, req.stop);
          if (stopHit !== undefined) {
            if (stopHit > emittedChars) yield [text.slice(emittedChars, stopHit)];
            emittedChars = stopHit;
            finishReason = "stop";
            break;
          }
          safeEnd = Math.min(safeEnd, text.length - partialStopSuffix(text, req.stop));
          if (safeEnd > emittedChars) {
            yield [text.slice(emittedChars, safeEnd)];
            emittedChars = safeEnd;
          }
          if (generated.length >= budget) break;
        }
        if (finishReason !== "stop" && finishReason !== "cancelled" && text.length > emittedChars) {
          yield [text.slice(emittedChars)];
        }
      }
    } finally {
      // for-await has already awaited the evaluation's return(), so the sequence is idle and can be reused at once.
      if (healthy) this.free.push(sequence);
      else void this.retire(sequence);
    }
    return { usage: usage(generated.length), finishReason, usageSource: "engine" };
  }

  /** Replaces a sequence whose state could not be reset; the slot stays counted as busy until the new one is ready. */
  private async retire(sequence: LlamaContextSequence): Promise<void> {
    let fresh: LlamaContextSequence | undefined;
    try {
      await sequence.dispose(); // resolves once the engine has its sequence id back
      if (!this.closed) fresh = this.context.getSequence();
    } catch {
      // No replacement: run with one slot fewer (slots().total shows it) rather than hand out a broken sequence.
    }
    // Looked up after the awaits: another retirement may have shifted the list meanwhile.
    const i = this.sequences.indexOf(sequence);
    if (fresh) {
      this.sequences[i] = fresh;
      this.free.push(fresh);
    } else {
      this.sequences.splice(i, 1);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.context.dispose();
    await this.model.dispose();
  }
}

/** Index where the first stop string starts, if any occurs. */
export function findStop(text: string, stops: string[]): number | undefined {
  let best: number | undefined;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (best === undefined || i < best)) best = i;
  }
  return best;
}

/** Length of the longest suffix of text that is a proper prefix of some stop string. */
export function partialStopSuffix(text: string, stops: string[]): number {
  let longest = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > longest; n--) {
      if (text.endsWith(s.slice(0, n))) {
        longest = n;
        break;
      }
    }
  }
  return longest;
}
