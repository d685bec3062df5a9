// Shapes a worker's answer deltas (protocol/answer-chunk.ts) into what OpenAI's API returns: a whole chat or text
// completion, the chunks of a stream, or an embeddings list. Pure functions and one collector: no I/O here.
import type { AnswerDelta, Logprobs, StructuredDelta, ToolCallDelta } from "../protocol/answer-chunk.js";
import type { GenerationEndpoint } from "../protocol/openai.js";

/** OpenAI's finish reasons; a cancelled answer (the app left) ends as "stop", as OpenAI's own do. */
export type ApiFinishReason = "stop" | "length" | "tool_calls" | "content_filter";
export function apiFinishReason(r: string | undefined): ApiFinishReason {
  return r === "length" || r === "tool_calls" || r === "content_filter" ? r : "stop";
}

function structured(d: AnswerDelta): StructuredDelta {
  return typeof d === "string" ? { content: d } : d;
}

interface ToolCallOut {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

interface ChoiceState {
  content: string;
  refusal?: string;
  toolCalls: Map<number, ToolCallOut>;
  logprobs?: Logprobs;
  finish?: ApiFinishReason;
}

/** Appends logprobs of the same kind (chat: token lists; completions: parallel arrays). */
export function mergeLogprobs(a: Logprobs | undefined, b: Logprobs): Logprobs {
  if (!a) return structuredClone(b);
  if ("tokens" in a && "tokens" in b) {
    return {
      tokens: [...a.tokens, ...b.tokens],
      token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
      top_logprobs: a.top_logprobs && b.top_logprobs ? [...a.top_logprobs, ...b.top_logprobs] : (a.top_logprobs ?? b.top_logprobs),
      text_offset: [...a.text_offset, ...b.text_offset],
    };
  }
  if (!("tokens" in a) && !("tokens" in b)) {
    return {
      content: a.content || b.content ? [...(a.content ?? []), ...(b.content ?? [])] : null,
      ...(a.refusal || b.refusal ? { refusal: [...(a.refusal ?? []), ...(b.refusal ?? [])] } : {}),
    };
  }
  return a; // mixed kinds: an engine bug; keep the first
}

/** Collects a whole answer (non-streaming): text, refusal, tool calls assembled from their fragments, logprobs. */
export class AnswerCollector {
  private readonly choices = new Map<number, ChoiceState>();

  private choice(i: number): ChoiceState {
    let c = this.choices.get(i);
    if (!c) this.choices.set(i, (c = { content: "", toolCalls: new Map() }));
    return c;
  }

  add(delta: AnswerDelta): void {
    const d = structured(delta);
    const c = this.choice(d.index ?? 0);
    if (d.content) c.content += d.content;
    if (d.refusal) c.refusal = (c.refusal ?? "") + d.refusal;
    for (const t of d.tool_calls ?? []) addToolCall(c.toolCalls, t);
    if (d.logprobs) c.logprobs = mergeLogprobs(c.logprobs, d.logprobs);
    if (d.finish_reason) c.finish = apiFinishReason(d.finish_reason);
  }

  /** Choices in index order (choice 0 always, even for an empty answer). */
  private ordered(): [number, ChoiceState][] {
    this.choice(0);
    return [...this.choices.entries()].sort((a, b) => a[0] - b[0]);
  }

  chatChoices(finish: string | undefined): unknown[] {
    return this.ordered().map(([index, c]) => {
      const calls = [...c.toolCalls.entries()].sort((a, b) => a[0] - b[0]).map(([, t]) => t);
      return {
        index,
        message: { role: "assistant", content: calls.length && !c.content ? null : c.content, refusal: c.refusal ?? null, ...(calls.length ? { tool_calls: calls } : {}) },
        logprobs: c.logprobs ?? null,
        finish_reason: c.finish ?? (calls.length && finish === "stop" ? "tool_calls" : apiFinishReason(finish)),
      };
    });
  }

  textChoices(finish: string | undefined): unknown[] {
    return this.ordered().map(([index, c]) => ({ index, text: c.content, logprobs: c.logprobs ?? null, finish_reason: c.finish ?? apiFinishReason(finish) }));
  }
}

function addToolCall(calls: Map<number, ToolCallOut>, t: ToolCallDelta): void {
  const call = calls.get(t.index) ?? { id: "", type: "function" as const, function: { name: "", arguments: "" } };
  if (t.id) call.id = t.id;
  if (t.function?.name) call.function.name += t.function.name;
  if (t.function?.arguments) call.function.arguments += t.function.arguments;
  calls.set(t.index, call);
}

/**
 * Streams chunks: one event per delta, with the choice's role announced on its first event (chat) and every
 * choice ended with its finish reason.
 */
export class ChunkShaper {
  private readonly started = new Set<number>();
  private readonly finished = new Set<number>();
  private readonly calledTools = new Set<number>();

  constructor(
    private readonly endpoint: GenerationEndpoint,
    private readonly base: { id: string; created: number; model: string },
    private readonly withUsageField: boolean,
  ) {}

  private wrap(choice: Record<string, unknown>): Record<string, unknown> {
    const object = this.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
    return { ...this.base, object, choices: [choice], ...(this.withUsageField ? { usage: null } : {}) };
  }

  /** The opening event of a chat stream (role of choice 0), as OpenAI sends it. */
  opening(): Record<string, unknown>[] {
    if (this.endpoint !== "chat") return [];
    this.started.add(0);
    return [this.wrap({ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null })];
  }

  chunks(delta: AnswerDelta): Record<string, unknown>[] {
    const d = structured(delta);
    const index = d.index ?? 0;
    const out: Record<string, unknown>[] = [];
    if (this.endpoint === "chat") {
      const body: Record<string, unknown> = {};
      if (!this.started.has(index)) {
        this.started.add(index);
        body.role = "assistant";
      }
      if (d.content !== undefined) body.content = d.content;
      if (d.refusal !== undefined) body.refusal = d.refusal;
      if (d.tool_calls?.length) {
        this.calledTools.add(index);
        body.tool_calls = d.tool_calls.map((t) => ({ index: t.index, ...(t.id ? { id: t.id, type: t.type ?? "function" } : {}), ...(t.function ? { function: t.function } : {}) }));
      }
      if (Object.keys(body).length || d.logprobs) out.push(this.wrap({ index, delta: body, logprobs: d.logprobs ?? null, finish_reason: null }));
    } else if (d.content !== undefined || d.logprobs) {
      out.push(this.wrap({ index, text: d.content ?? "", logprobs: d.logprobs ?? null, finish_reason: null }));
    }
    if (d.finish_reason) out.push(...this.finish(index, d.finish_reason));
    return out;
  }

  private finish(index: number, reason: string): Record<string, unknown>[] {
    if (this.finished.has(index)) return [];
    this.finished.add(index);
    const r = this.calledTools.has(index) && reason === "stop" ? "tool_calls" : apiFinishReason(reason);
    return [this.endpoint === "chat" ? this.wrap({ index, delta: {}, logprobs: null, finish_reason: r }) : this.wrap({ index, text: "", logprobs: null, finish_reason: r })];
  }

  /** The finish events of every choice not yet ended (choice 0 at least), with the answer's finish reason. */
  closing(reason: string | undefined): Record<string, unknown>[] {
    const open = [...new Set([0, ...this.started])].filter((i) => !this.finished.has(i)).sort((a, b) => a - b);
    return open.flatMap((i) => this.finish(i, reason ?? "stop"));
  }
}

/** Embedding vectors by input index, from base64 float32 (the wire form), shaped as the app asked. */
export class EmbeddingCollector {
  private readonly vectors = new Map<number, string>();

  add(delta: AnswerDelta): void {
    if (typeof delta === "string" || typeof delta.embedding !== "string") throw new Error("the worker sent a delta that is not an embedding in an embeddings answer");
    this.vectors.set(delta.index ?? 0, delta.embedding);
  }

  data(format: "float" | "base64", inputs: number): unknown[] {
    if (this.vectors.size !== inputs) throw new Error(`the worker sent ${this.vectors.size} embeddings for ${inputs} inputs`);
    return [...this.vectors.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([index, b64]) => ({ object: "embedding", index, embedding: format === "base64" ? b64 : float32FromBase64(b64) }));
  }
}

export function float32FromBase64(b64: string): number[] {
  const bytes = Buffer.from(b64, "base64");
  const copy = new Uint8Array(bytes.length - (bytes.length % 4));
  copy.set(bytes.subarray(0, copy.length));
  return Array.from(new Float32Array(copy.buffer));
}
