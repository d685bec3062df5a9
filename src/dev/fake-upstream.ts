// DEVELOPMENT STAND-IN: a fast, deterministic OpenAI-compatible server used by tests and benchmarks in
// place of a GPU engine (vLLM/SGLang). It "generates" by echoing words of the prompt; nothing here is a model.
// It speaks the API's shapes a real engine does: tool calls (it calls the named or first tool, with arguments built
// from the tool's JSON schema, and answers in text once a tool result is in the conversation), response_format
// (an answer built from the schema), logprobs, n choices, and /v1/embeddings (vectors derived from a hash).
import type http from "node:http";
import { createHash } from "node:crypto";
import { sendJson, startHttpServer, type HttpServerHandle } from "../util/http.js";
import { boundaryOf, parseMultipart } from "../util/multipart.js";

export interface FakeUpstreamOptions {
  host?: string;
  port?: number;
  model?: string;
  /** Completion tokens per answer unless max_tokens is lower. */
  tokens?: number;
  /** Delay between streamed tokens. */
  tokenDelayMs?: number;
  /** Leave usage out of responses (to exercise tokenizer fallback). */
  omitUsage?: boolean;
  /** Multiply the reported completion tokens (an engine, or worker, that over-reports usage). */
  inflateUsage?: number;
  /** Answer every generation with HTTP 500 (a broken engine that still lists its models). */
  failGenerations?: boolean;
}

export interface FakeUpstream extends HttpServerHandle {
  requests: number;
  /** Streams the caller abandoned before the end. */
  aborted: number;
  /** Bodies received, newest last (bounded). */
  bodies: Record<string, unknown>[];
  /** Transcription forms received: field values, and {filename, bytes} for files. */
  forms: Record<string, unknown>[];
}

/**
 * A value that satisfies a (simple) JSON schema, deterministically: what a grammar-constrained engine would emit.
 * Strings are the seed, extended with the property path when `nest` (so each field of an answer differs).
 */
export function exampleFor(schema: unknown, seed: string, nest = true): unknown {
  const sub = (s: unknown, key: string) => exampleFor(s, nest ? `${seed}${key}` : seed, nest);
  const sc = (schema ?? {}) as { type?: unknown; properties?: Record<string, unknown>; items?: unknown; enum?: unknown[]; const?: unknown; anyOf?: unknown[]; oneOf?: unknown[]; minItems?: number };
  if (sc.const !== undefined) return sc.const;
  if (Array.isArray(sc.enum) && sc.enum.length) return sc.enum[0];
  const alt = sc.anyOf ?? sc.oneOf;
  if (Array.isArray(alt) && alt.length) return exampleFor(alt[0], seed, nest);
  const type = Array.isArray(sc.type) ? sc.type[0] : sc.type;
  switch (type) {
    case "object":
      return Object.fromEntries(Object.entries(sc.properties ?? {}).map(([k, v]) => [k, sub(v, `.${k}`)]));
    case "array":
      return Array.from({ length: Math.max(1, sc.minItems ?? 1) }, (_, i) => sub(sc.items, `[${i}]`));
    case "integer":
    case "number":
      return 42;
    case "boolean":
      return true;
    case "null":
      return null;
    case "string":
      return seed;
    default:
      return sc.properties ? exampleFor({ ...sc, type: "object" }, seed, nest) : seed;
  }
}

/** A deterministic unit vector for a text. */
function fakeEmbedding(text: string, dims: number): number[] {
  const v: number[] = [];
  for (let i = 0; v.length < dims; i++) {
    const h = createHash("sha256").update(`${i}:${text}`).digest();
    for (let j = 0; j + 4 <= h.length && v.length < dims; j += 4) v.push(h.readInt32LE(j) / 2 ** 31);
  }
  const norm = Math.hypot(...v) || 1;
  return v.map((x) => x / norm);
}

type Msg = { role: string; content?: unknown; tool_calls?: unknown[] };
type Tool = { function: { name: string; parameters?: unknown } };

/** The tool call this fake engine makes for a chat request, if any: none once a tool result answered it. */
function toolCallFor(body: Record<string, unknown>): { name: string; arguments: string } | undefined {
  const tools = (body.tools as Tool[] | undefined) ?? [];
  const choice = body.tool_choice as string | { function?: { name?: string } } | undefined;
  if (!tools.length || choice === "none") return undefined;
  const messages = body.messages as Msg[];
  if (messages[messages.length - 1]?.role === "tool") return undefined;
  const wanted = typeof choice === "object" ? choice.function?.name : undefined;
  const tool = tools.find((t) => t.function.name === wanted) ?? tools[0]!;
  const user = [...messages].reverse().find((m) => m.role === "user");
  const word = typeof user?.content === "string" ? (user.content.split(/\s+/).filter(Boolean).pop() ?? "x") : "x";
  return { name: tool.function.name, arguments: JSON.stringify(exampleFor(tool.function.parameters ?? { type: "object" }, word, false)) };
}

function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p: { text?: string }) => p.text ?? "").join("");
  return "";
}

function words(prompt: string, n: number): string[] {
  const src = prompt.split(/\s+/).filter(Boolean);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${src.length ? src[i % src.length] : "token"}${i}`);
  return out;
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const model = opts.model ?? "fake-model";
  const state = { requests: 0, aborted: 0, bodies: [] as Record<string, unknown>[], forms: [] as Record<string, unknown>[] };
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/v1/models") {
      return sendJson(res, 200, { object: "list", data: [{ id: model, object: "model", created: 0, owned_by: "fake" }] });
    }
    const known = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/audio/transcriptions"];
    if (req.method !== "POST" || !known.includes(path ?? "")) return sendJson(res, 404, { error: { message: "not found" } });
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    if (path === "/v1/audio/transcriptions") {
      // "Hears" the file: says how many bytes of which file and what language it was told, as text or JSON.
      state.requests++;
      const boundary = boundaryOf(req.headers["content-type"]);
      if (!boundary) return sendJson(res, 400, { error: { message: "expected multipart/form-data" } });
      const form = parseMultipart(Buffer.concat(parts), boundary);
      const file = form.find((f) => f.name === "file");
      const field = (n: string) => form.find((f) => f.name === n)?.data.toString("utf8");
      state.forms.push(Object.fromEntries(form.map((f) => [f.name, f.filename !== undefined ? { filename: f.filename, bytes: f.data.length } : f.data.toString("utf8")])));
      const text = `heard ${file?.data.length ?? 0} bytes of ${file?.filename ?? "nothing"}${field("language") ? ` in ${field("language")}` : ""}`;
      const format = field("response_format") ?? "json";
      if (format === "text" || format === "srt" || format === "vtt") {
        res.writeHead(200, { "content-type": "text/plain" });
        return res.end(text);
      }
      const words = text.split(" ").length;
      return sendJson(res, 200, { text, ...(opts.omitUsage ? {} : { usage: { type: "tokens", input_tokens: 10, output_tokens: words, total_tokens: 10 + words } }) });
    }
    const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
    state.requests++;
    state.bodies.push(body);
    if (state.bodies.length > 100) state.bodies.shift();
    if (opts.failGenerations) return sendJson(res, 500, { error: { message: "fake engine failure" } });
    if (path === "/v1/embeddings") {
      const inputs = typeof body.input === "string" ? [body.input] : (body.input as unknown[]).map((x) => (typeof x === "string" ? x : JSON.stringify(x)));
      const dims = typeof body.dimensions === "number" ? body.dimensions : 8;
      const promptTokens = inputs.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0);
      return sendJson(res, 200, {
        object: "list",
        data: inputs.map((t, index) => ({ object: "embedding", index, embedding: fakeEmbedding(t, dims) })),
        model,
        ...(opts.omitUsage ? {} : { usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }),
      });
    }
    const chat = path === "/v1/chat/completions";
    const messages = chat ? (body.messages as Msg[]) : [];
    // Several prompts (completions) are several answers: n choices for each, in order.
    const prompts = chat ? [messages.map((m) => messageText(m.content)).join(" ")] : Array.isArray(body.prompt) ? body.prompt.map(String) : [String(body.prompt)];
    const prompt = prompts.join(" ");
    const cap = Number(body.max_completion_tokens ?? body.max_tokens ?? opts.tokens ?? 16);
    const n = Math.min(cap, opts.tokens ?? 16);
    const call = chat ? toolCallFor(body) : undefined;
    const format = body.response_format as { type?: string; json_schema?: { schema?: unknown } } | undefined;
    // A structured answer (tool arguments, JSON) is one "token" per character, as a character-level engine would emit it.
    const json = format?.type === "json_schema" ? JSON.stringify(exampleFor(format.json_schema?.schema, "value")) : format?.type === "json_object" ? JSON.stringify({ answer: prompt.split(/\s+/)[0] ?? "" }) : undefined;
    const out = call ? [] : json !== undefined ? [json] : words(prompt, n);
    const perPrompt = typeof body.n === "number" ? body.n : 1;
    const choices = perPrompt * prompts.length;
    const outOf = (index: number) => (prompts.length > 1 ? words(prompts[Math.floor(index / perPrompt)]!, n) : out);
    const logprobs = chat ? body.logprobs === true : typeof body.logprobs === "number";
    const top = Number(chat ? (body.top_logprobs ?? 0) : (body.logprobs ?? 0));
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
    const perChoice = call ? 1 : json !== undefined ? 1 : n;
    const reported = perChoice * choices * (opts.inflateUsage ?? 1);
    const usage = { prompt_tokens: promptTokens, completion_tokens: reported, total_tokens: promptTokens + reported };
    const finish = call ? "tool_calls" : json !== undefined ? "stop" : n < (opts.tokens ?? 16) ? "length" : "stop";
    const lp = (text: string) =>
      chat
        ? { content: [{ token: text, logprob: -0.25, bytes: [...Buffer.from(text)], top_logprobs: Array.from({ length: top }, (_, i) => ({ token: i ? `${text}~${i}` : text, logprob: -0.25 - i, bytes: null })) }] }
        : { tokens: [text], token_logprobs: [-0.25], top_logprobs: top ? [{ [text]: -0.25 }] : null, text_offset: [0] };
    const callOut = call ? { id: "call_fake0", type: "function", function: call } : undefined;
    if (!body.stream) {
      const list = Array.from({ length: choices }, (_, index) => {
        const text = outOf(index).join(" ");
        return chat
          ? { index, message: { role: "assistant", content: call ? null : text, ...(callOut ? { tool_calls: [callOut] } : {}) }, logprobs: logprobs ? lp(text) : null, finish_reason: finish }
          : { index, text, logprobs: logprobs ? lp(text) : null, finish_reason: finish };
      });
      return sendJson(res, 200, { id: "fake", object: chat ? "chat.completion" : "text_completion", created: 0, model, choices: list, ...(opts.omitUsage ? {} : { usage }) });
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    const send = (choice: Record<string, unknown>) => res.write(`data: ${JSON.stringify({ id: "fake", object: "chunk", created: 0, model, choices: [choice] })}\n\n`);
    if (call) {
      // As engines stream a call: id and name first, then the arguments in pieces.
      const half = Math.ceil(call.arguments.length / 2);
      for (let index = 0; index < choices; index++) {
        send({ index, delta: { role: "assistant", tool_calls: [{ index: 0, id: "call_fake0", type: "function", function: { name: call.name, arguments: "" } }] }, finish_reason: null });
        send({ index, delta: { tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(0, half) } }] }, finish_reason: null });
        send({ index, delta: { tool_calls: [{ index: 0, function: { arguments: call.arguments.slice(half) } }] }, finish_reason: null });
      }
    }
    for (let i = 0; i < out.length; i++) {
      for (let index = 0; index < choices; index++) {
        const text = (i ? " " : "") + outOf(index)[i];
        send(chat ? { index, delta: { content: text }, logprobs: logprobs ? lp(text) : null, finish_reason: null } : { index, text, logprobs: logprobs ? lp(text) : null, finish_reason: null });
      }
      if (opts.tokenDelayMs) await new Promise((r) => setTimeout(r, opts.tokenDelayMs));
      if (res.destroyed) {
        state.aborted++;
        return;
      }
    }
    for (let index = 0; index < choices; index++) send(chat ? { index, delta: {}, finish_reason: finish } : { index, text: "", finish_reason: finish });
    const so = body.stream_options as { include_usage?: boolean } | undefined;
    if (so?.include_usage && !opts.omitUsage) res.write(`data: ${JSON.stringify({ id: "fake", object: "chunk", created: 0, model, choices: [], usage })}\n\n`);
    res.end("data: [DONE]\n\n");
  };
  const server = await startHttpServer(opts.host ?? "127.0.0.1", opts.port ?? 0, (req, res) => {
    handler(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(err) } });
      else res.destroy();
    });
  });
  return {
    ...server,
    bodies: state.bodies,
    forms: state.forms,
    get requests() {
      return state.requests;
    },
    get aborted() {
      return state.aborted;
    },
  };
}
