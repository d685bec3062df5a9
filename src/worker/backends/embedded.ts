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
import type { Llama, LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaGrammar, LlamaGrammarEvaluationState, LlamaModel, Token, TokenBias } from "node-llama-cpp";
import type { EmbeddingRequest, GenerationEndpoint, GenerationRequest } from "../../protocol/openai.js";
import type { AnswerDelta, Logprobs } from "../../protocol/answer-chunk.js";
import { checkEmbeddedSupport, readToolAnswer, structuredPlan, toolsInstruction, type StructuredPlan } from "./structured.js";
import type { ModelInfo } from "../../protocol/messages.js";
import { BackendError, type Backend, type BackendHealth, type EmbeddingResult, type GenerationResult } from "./backend.js";
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

  async *generate(req: GenerationRequest, signal: AbortSignal): AsyncGenerator<AnswerDelta[], GenerationResult> {
    if (req.model !== this.info.id) throw new BackendError("bad_request", `this worker serves ${this.info.id}, not ${req.model}`);
    if (this.closed) throw new BackendError("backend_failed", "the embedded backend is closed (the worker is shutting down); send the request to another worker.");
    checkEmbeddedSupport(req);
    const plan = structuredPlan(req);
    // Only chat models and constrained answers need async preparation; skipping the await otherwise keeps validation
    // and slot taking in the caller's first next() call, so requests arriving together are admitted in arrival order.
    if (this.hasChatTemplate && !this.chatWrapper) await this.prepare();
    const grammar = plan ? await this.grammarFor(plan) : undefined;
    // A chat model reads what tools it has; a plain-transcript model (the shipped one) could not, so it gets only the grammar.
    const prompt = this.tokenizePrompt(plan?.kind === "tools" && this.hasChatTemplate ? { ...req, messages: [{ role: "system", content: toolsInstruction(plan) }, ...req.messages!] } : req);
    const ctxLen = this.info.contextLength ?? 0;
    if (prompt.length >= ctxLen) {
      throw new BackendError("context_length_exceeded", `This model's maximum context length is ${ctxLen} tokens. However, your ${req.endpoint === "chat" ? "messages" : "prompt"} resulted in ${prompt.length} tokens. Please reduce the length of the ${req.endpoint === "chat" ? "messages" : "prompt"}.`);
    }
    const bias = req.logitBias ? await this.tokenBias(req.logitBias) : undefined;
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
    // Logprobs of tokens whose text has not gone out yet: they travel with it.
    const pending: TokenLogprob[] = [];
    const withLogprobs = (chunk: string): AnswerDelta => (req.logprobs ? { content: chunk, logprobs: logprobsDelta(req.endpoint, pending.splice(0)) } : chunk);
    // A tool call is read back whole from the finished JSON; JSON content streams as it comes.
    const holdBack = plan?.kind === "tools";
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
        const options = {
          temperature: req.temperature,
          topK: req.topK,
          topP: req.topP,
          minP: req.minP,
          seed: req.seed ?? (req.temperature > 0 ? (Math.random() * 2 ** 31) | 0 : undefined),
          repeatPenalty:
            req.presencePenalty || req.frequencyPenalty
              ? { punishTokens: () => generated, presencePenalty: req.presencePenalty, frequencyPenalty: req.frequencyPenalty }
              : undefined,
          ...(grammar ? { grammarEvaluationState: grammar } : {}),
          ...(bias ? { tokenBias: bias } : {}),
        };
        const evaluation = req.logprobs
          ? sequence.evaluateWithMetadata(prompt, { probabilities: true }, options)
          : (async function* () {
              for await (const token of sequence.evaluate(prompt, options)) yield { token, probabilities: undefined };
            })();
        for await (const { token, probabilities } of evaluation) {
          if (signal.aborted) {
            finishReason = "cancelled";
            break;
          }
          if (this.model.isEogToken(token)) {
            finishReason = "stop";
            break;
          }
          generated.push(token);
          const offset = text.length;
          text = this.model.detokenize(generated);
          if (probabilities) pending.push({ ...this.logprobOf(token, probabilities, req.logprobs!.top), offset });
          // A grammar allows whitespace after the JSON value, and a model that never learnt JSON may not end there:
          // the answer is complete once the value is.
          const complete = grammar !== undefined && jsonComplete(text);
          if (complete) finishReason = "stop";
          if (holdBack) {
            if (complete || generated.length >= budget) break;
            continue;
          }
          if (complete) {
            if (text.length > emittedChars) yield [withLogprobs(text.slice(emittedChars))];
            emittedChars = text.length;
            break;
          }
          // Hold back an incomplete UTF-8 sequence and any text that may be the start of a stop string.
          let safeEnd = text.endsWith("\uFFFD") ? text.length - 1 : text.length;
          const stopHit = findStop(text, req.stop);
          if (stopHit !== undefined) {
            if (stopHit > emittedChars) yield [withLogprobs(text.slice(emittedChars, stopHit))];
            emittedChars = stopHit;
            finishReason = "stop";
            break;
          }
          safeEnd = Math.min(safeEnd, text.length - partialStopSuffix(text, req.stop));
          if (safeEnd > emittedChars) {
            yield [withLogprobs(text.slice(emittedChars, safeEnd))];
            emittedChars = safeEnd;
          }
          if (generated.length >= budget) break;
        }
        if (holdBack && finishReason !== "cancelled") {
          const answer = readToolAnswer(text);
          if (answer && "toolCalls" in answer) {
            yield [{ tool_calls: answer.toolCalls }];
            finishReason = "tool_calls";
          } else if (answer) {
            if (answer.content) yield [withLogprobs(answer.content)];
          } else if (text) {
            yield [withLogprobs(text)]; // cut off before the JSON closed: the raw text, with finish_reason "length"
          }
        } else if (finishReason !== "stop" && finishReason !== "cancelled" && text.length > emittedChars) {
          yield [withLogprobs(text.slice(emittedChars))];
        }
      }
    } finally {
      // for-await has already awaited the evaluation's return(), so the sequence is idle and can be reused at once.
      if (healthy) this.free.push(sequence);
      else void this.retire(sequence);
    }
    return { usage: usage(generated.length), finishReason, usageSource: "engine" };
  }

  /** A fresh grammar state for a constrained answer (grammars are compiled once per schema and kept). */
  private async grammarFor(plan: StructuredPlan): Promise<LlamaGrammarEvaluationState> {
    const key = JSON.stringify(plan.schema);
    let grammar = this.grammars.get(key);
    if (!grammar) {
      const llama = await loadLlama();
      try {
        const fromSchema = await llama.createGrammarForJsonSchema(plan.schema as never);
        // node-llama-cpp's integer rule allows an exponent ("-9e-6"), which JSON Schema's integer does not.
        const text = fromSchema.grammar.replaceAll(INTEGER_WITH_EXPONENT, INTEGER);
        grammar = text === fromSchema.grammar ? fromSchema : await llama.createGrammar({ grammar: text, rootRuleName: fromSchema.rootRuleName });
      } catch (err) {
        throw new BackendError("unsupported_parameter", `Unsupported parameter: '${plan.param}' uses a JSON schema the embedded engine cannot turn into a grammar (${(err as Error).message}). Simplify the schema, or use a worker with --backend openai.`);
      }
      if (this.grammars.size >= 64) this.grammars.delete(this.grammars.keys().next().value!);
      this.grammars.set(key, grammar);
    }
    const { LlamaGrammarEvaluationState } = await import("node-llama-cpp");
    return new LlamaGrammarEvaluationState({ model: this.model, grammar });
  }

  private readonly grammars = new Map<string, LlamaGrammar>();

  /** OpenAI's logit_bias (token id -> -100..100, -100 bans) as llama.cpp's token bias. */
  private async tokenBias(bias: Record<string, number>): Promise<TokenBias> {
    const vocab = this.model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? Number.MAX_SAFE_INTEGER;
    const { TokenBias } = await import("node-llama-cpp");
    const tb = new TokenBias(this.model.tokenizer);
    for (const [id, v] of Object.entries(bias)) {
      const token = Number(id);
      if (token >= vocab) throw new BackendError("bad_request", `Invalid 'logit_bias': token id ${id} is outside this model's vocabulary of ${vocab} tokens.`);
      tb.set(token as Token, v <= -100 ? "never" : { logit: v });
    }
    return tb;
  }

  private logprobOf(token: Token, probabilities: Map<Token, number>, top: number): Omit<TokenLogprob, "offset"> {
    const entry = (t: Token, p: number) => {
      const text = this.model.detokenize([t]);
      return { token: text, logprob: p > 0 ? Math.log(p) : -9999, bytes: [...Buffer.from(text, "utf8")] };
    };
    const tops: TokenLogprob["top_logprobs"] = [];
    for (const [t, p] of probabilities) {
      if (tops.length >= top) break;
      tops.push(entry(t, p));
    }
    return { ...entry(token, probabilities.get(token) ?? 0), top_logprobs: tops };
  }

  /**
   * Embeddings from the same model file, on an embedding context created at the first request. The shipped model
   * is a tiny character-level one: its vectors are real (the model's own hidden state) but not meaningful ones.
   */
  async embed(req: EmbeddingRequest, signal: AbortSignal): Promise<EmbeddingResult> {
    if (req.model !== this.info.id) throw new BackendError("bad_request", `this worker serves ${this.info.id}, not ${req.model}`);
    if (this.closed) throw new BackendError("backend_failed", "the embedded backend is closed (the worker is shutting down); send the request to another worker.");
    const ctxLen = this.info.contextLength ?? 0;
    this.embeddingContext ??= this.model.createEmbeddingContext({ contextSize: ctxLen, threads: this.context.currentThreads });
    let context: LlamaEmbeddingContext;
    try {
      context = await this.embeddingContext;
    } catch (err) {
      this.embeddingContext = undefined;
      throw new BackendError("backend_failed", `this model cannot make embeddings: ${(err as Error).message}`);
    }
    const inputs = req.input.map((x) => (typeof x === "string" ? this.model.tokenize(x) : (x as Token[])));
    const embeddings: number[][] = [];
    let promptTokens = 0;
    for (const [i, tokens] of inputs.entries()) {
      if (signal.aborted) throw new BackendError("backend_failed", "cancelled");
      if (tokens.length > ctxLen) {
        throw new BackendError("context_length_exceeded", `This model's maximum context length is ${ctxLen} tokens, however input[${i}] is ${tokens.length} tokens. Shorten the input.`);
      }
      promptTokens += tokens.length;
      let vector = [...(await context.getEmbeddingFor(tokens)).vector];
      if (req.dimensions !== undefined) {
        if (req.dimensions > vector.length) throw new BackendError("unsupported_parameter", `Unsupported parameter: 'dimensions' is ${req.dimensions}; this model's embeddings have ${vector.length}.`);
        vector = normalized(vector.slice(0, req.dimensions));
      }
      embeddings.push(vector);
    }
    return { embeddings, usage: { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens }, usageSource: "engine" };
  }

  private embeddingContext: Promise<LlamaEmbeddingContext> | undefined;

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
    const embedding = this.embeddingContext;
    this.embeddingContext = undefined;
    await embedding?.then((c) => c.dispose()).catch(() => undefined);
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

/** One token's logprob as OpenAI's chat API shapes it. */
interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
  /** Where the token's text starts in the answer (completions' text_offset). */
  offset: number;
}

/** Logprobs of some tokens in the shape of the endpoint: chat's token list, or completions' parallel arrays. */
function logprobsDelta(endpoint: GenerationEndpoint, entries: TokenLogprob[]): Logprobs {
  if (endpoint === "chat") return { content: entries.map(({ offset: _o, ...e }) => e) };
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top_logprobs.map((t) => [t.token, t.logprob]))),
    text_offset: entries.map((e) => e.offset),
  };
}

function normalized(v: number[]): number[] {
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

const INTEGER = '"-"? ("0" | [1-9] [0-9]{0,15})';
const INTEGER_WITH_EXPONENT = `${INTEGER} ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?`;

/** Whether text is one whole JSON value (checked only when it could have just ended: after a closing bracket). */
function jsonComplete(text: string): boolean {
  const t = text.trimEnd();
  if (!t.endsWith("}") && !t.endsWith("]")) return false;
  try {
    JSON.parse(t);
    return true;
  } catch {
    return false;
  }
}
