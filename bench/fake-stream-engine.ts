// DEVELOPMENT STAND-IN for a GPU inference engine under realistic streaming load (benchmark only): an
// OpenAI-compatible server that streams `tokens` tokens per answer, one decoding step every `stepMs`. Like a real
// batching engine (vLLM, SGLang) it runs ONE step clock for all open streams: each step writes the next token of
// every stream that is open, and a new request joins at the next step. Nothing here is a model.
//   Run as a child process (bench/lib/stream-engine-process.ts) so its CPU is its own.
import type http from "node:http";
import { sendJson, startHttpServer, type HttpServerHandle } from "../src/util/http.js";

export interface FakeStreamEngineOptions {
  model: string;
  /** Completion tokens per answer (unless max_tokens asks fewer). */
  tokens: number;
  /** Time between two decoding steps (one token per open stream per step). */
  stepMs: number;
  /** Limits of the HTTP server (this engine must hold many thousands of streams). */
  maxConnections?: number;
}

interface OpenStream {
  res: http.ServerResponse;
  chat: boolean;
  sent: number;
  total: number;
  promptTokens: number;
  includeUsage: boolean;
}

export interface FakeStreamEngine extends HttpServerHandle {
  /** Streams open now. */
  readonly open: number;
  /** Answers finished since start. */
  readonly finished: number;
}

/** A token's text: short, distinct words, so a client can tell them apart. */
const tokenText = (i: number) => (i ? " " : "") + `w${i}`;

export async function startFakeStreamEngine(o: FakeStreamEngineOptions): Promise<FakeStreamEngine> {
  const open = new Set<OpenStream>();
  let finished = 0;
  const event = (s: OpenStream, choice: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id: "fake-stream", object: s.chat ? "chat.completion.chunk" : "text_completion", created: 0, model: o.model, choices: [choice], ...extra })}\n\n`;

  // The step clock: one token for every open stream, then the streams that are done end.
  const step = () => {
    for (const s of open) {
      if (s.res.destroyed) {
        open.delete(s);
        continue;
      }
      const text = tokenText(s.sent);
      s.res.write(event(s, s.chat ? { index: 0, delta: { content: text }, finish_reason: null } : { index: 0, text, finish_reason: null }));
      s.sent++;
      if (s.sent < s.total) continue;
      open.delete(s);
      finished++;
      const last = s.chat ? { index: 0, delta: {}, finish_reason: "length" } : { index: 0, text: "", finish_reason: "length" };
      let tail = event(s, last);
      if (s.includeUsage) {
        const usage = { prompt_tokens: s.promptTokens, completion_tokens: s.total, total_tokens: s.promptTokens + s.total };
        tail += `data: ${JSON.stringify({ id: "fake-stream", object: "chat.completion.chunk", created: 0, model: o.model, choices: [], usage })}\n\n`;
      }
      s.res.end(`${tail}data: [DONE]\n\n`);
    }
  };
  const clock = setInterval(step, o.stepMs);

  const handler = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? "").split("?")[0];
    if (req.method === "GET" && path === "/v1/models") return sendJson(res, 200, { object: "list", data: [{ id: o.model, object: "model", created: 0, owned_by: "fake" }] });
    if (req.method !== "POST" || (path !== "/v1/chat/completions" && path !== "/v1/completions")) return sendJson(res, 404, { error: { message: "not found" } });
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(parts).toString("utf8")) as Record<string, unknown>;
    const chat = path === "/v1/chat/completions";
    const prompt = chat ? (body.messages as { content: string }[]).map((m) => m.content).join(" ") : String(body.prompt);
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
    const total = Math.max(1, Math.min(Number(body.max_tokens ?? o.tokens), o.tokens));
    if (!body.stream) return sendJson(res, 400, { error: { message: "this benchmark engine only streams (set stream: true)" } });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.flushHeaders();
    const so = body.stream_options as { include_usage?: boolean } | undefined;
    open.add({ res, chat, sent: 0, total, promptTokens, includeUsage: so?.include_usage === true });
  };
  const server = await startHttpServer("127.0.0.1", 0, (req, res) => {
    handler(req, res).catch((err) => {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(err) } });
      else res.destroy();
    });
  }, { maxConnections: o.maxConnections ?? 30_000, maxConnectionsPerAddress: o.maxConnections ?? 30_000, requestTimeoutMs: 600_000 });
  return {
    ...server,
    close: async () => {
      clearInterval(clock);
      for (const s of open) s.res.destroy();
      open.clear();
      await server.close();
    },
    get open() {
      return open.size;
    },
    get finished() {
      return finished;
    },
  };
}
