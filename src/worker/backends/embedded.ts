// The embedded backend: a real llama.cpp engine in-process on CPU through node-llama-cpp (prebuilt addon,
// never compiled or downloaded at run time). Generation is pulled token by token from the sequence's
// evaluate() generator, so a slow reader really pauses the engine (backpressure), and abort stops it.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { basename } from "node:path";
import { fileURLToPath } from "node:url";
import type { Llama, LlamaContext, LlamaModel, Token } from "node-llama-cpp";
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
  private active = 0;

  private constructor(
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly info: ModelInfo,
    private readonly capacity: number,
    private readonly hasChatTemplate: boolean,
  ) {}

  static async load(opts: EmbeddedOptions = {}): Promise<EmbeddedBackend> {
    const file = opts.modelFile ?? DEFAULT_MODEL_FILE;
    const capacity = opts.capacity ?? 4;
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
    const name = opts.modelName ?? basename(file).replace(/\.gguf$/i, "");
    const digest = await sha256File(file);
    const meta = model.fileInfo.metadata as unknown as { tokenizer?: { chat_template?: string } };
    const info: ModelInfo = { id: name, contextLength: trainCtx, digest };
    return new EmbeddedBackend(model, context, info, capacity, typeof meta.tokenizer?.chat_template === "string");
  }

  models(): ModelInfo[] {
    return [this.info];
  }

  async health(): Promise<BackendHealth> {
    return { ok: true };
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
    if (this.active >= this.capacity) throw new BackendError("overloaded", `all ${this.capacity} sequences are busy`);
    await this.prepare();
    const prompt = this.tokenizePrompt(req);
    const ctxLen = this.info.contextLength ?? 0;
    if (prompt.length >= ctxLen) {
      throw new BackendError("bad_request", `the prompt is ${prompt.length} tokens; this model's context holds ${ctxLen}. Shorten the prompt.`);
    }
    this.active++;
    const sequence = this.context.getSequence();
    const budget = Math.min(req.maxTokens, ctxLen - prompt.length);
    const generated: Token[] = [];
    let emittedChars = 0;
    let text = "";
    let finishReason: GenerationResult["finishReason"] = "length";
    try {
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
    } finally {
      sequence.dispose();
      this.active--;
    }
    return {
      usage: { prompt_tokens: prompt.length, completion_tokens: generated.length, total_tokens: prompt.length + generated.length },
      finishReason,
      usageSource: "engine",
    };
  }

  async close(): Promise<void> {
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
