// DEVELOPMENT STAND-IN: a fast, deterministic OpenAI-compatible server used by tests and benchmarks in
// place of a GPU engine (vLLM/SGLang). It "generates" by echoing words of the prompt; nothing here is a model.
import type http from "node:http";
import { sendJson, startHttpServer, type HttpServerHandle } from "../util/http.js";

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
}

function words(prompt: string, n: number): string[] {
  const src = prompt.split(/\s+/).filter(Boolean);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`${src.length ? src[i % src.length] : "token"}${i}`);
  return out;
}

export async function startFakeUpstream(opts: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const model = opts.model ?? "fake-model";
  const state = { requests: 0, aborted: 0, bodies: [] as Record<string, unknown>[] };
  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/v1/models") {
      return sendJson(res, 200, { object: "list", data: [{ id: model, object: "model", created: 0, owned_by: "fake" }] });
    }
    if (req.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/v1/completions")) return sendJson(res, 404, { error: { message: "not found" } });
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
    state.requests++;
    state.bodies.push(body);
    if (state.bodies.length > 100) state.bodies.shift();
    if (opts.failGenerations) return sendJson(res, 500, { error: { message: "fake engine failure" } });
    const chat = path === "/v1/chat/completions";
    const prompt = chat ? (body.messages as { content: string }[]).map((m) => m.content).join(" ") : String(body.prompt);
    const n = Math.min(Number(body.max_tokens ?? opts.tokens ?? 16), opts.tokens ?? 16);
    const out = words(prompt, n);
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
    const reported = n * (opts.inflateUsage ?? 1);
    const usage = { prompt_tokens: promptTokens, completion_tokens: reported, total_tokens: promptTokens + reported };
    const finish = n < (opts.tokens ?? 16) ? "length" : "stop";
    if (!body.stream) {
      const text = out.join(" ");
      const choice = chat ? { index: 0, message: { role: "assistant", content: text }, finish_reason: finish } : { index: 0, text, finish_reason: finish };
      return sendJson(res, 200, { id: "fake", object: chat ? "chat.completion" : "text_completion", created: 0, model, choices: [choice], ...(opts.omitUsage ? {} : { usage }) });
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (let i = 0; i < out.length; i++) {
      const text = (i ? " " : "") + out[i];
      const choice = chat ? { index: 0, delta: { content: text }, finish_reason: null } : { index: 0, text, finish_reason: null };
      res.write(`data: ${JSON.stringify({ id: "fake", object: "chunk", created: 0, model, choices: [choice] })}\n\n`);
      if (opts.tokenDelayMs) await new Promise((r) => setTimeout(r, opts.tokenDelayMs));
      if (res.destroyed) {
        state.aborted++;
        return;
      }
    }
    const last = chat ? { index: 0, delta: {}, finish_reason: finish } : { index: 0, text: "", finish_reason: finish };
    res.write(`data: ${JSON.stringify({ id: "fake", object: "chunk", created: 0, model, choices: [last] })}\n\n`);
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
    get requests() {
      return state.requests;
    },
    get aborted() {
      return state.aborted;
    },
  };
}
