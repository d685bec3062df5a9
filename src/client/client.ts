// The client role: an OpenAI-compatible HTTP API for apps (chat completions, completions, models; SSE
// streaming) in front of one proxy connection. Apps use the official SDKs unchanged.
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type { Stream } from "../protocol/connection.js";
import { StreamError } from "../protocol/connection.js";
import { CocoonError } from "../protocol/errors.js";
import { inferenceReplySchema, inferenceTrailerSchema, OP_INFERENCE, parseMessage, type InferenceReply, type InferenceTrailer } from "../protocol/messages.js";
import { ApiError, invalidRequest, MAX_TOKENS_LIMIT, parseGenerationRequest, wantsStreamUsage, type Endpoint, type GenerationRequest } from "../protocol/openai.js";
import { sseData } from "../protocol/sse.js";
import { decodeAnswerChunk } from "../protocol/answer-chunk.js";
import type { PeerInfo, PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { DEFAULT_HTTP_LIMITS, sendJson, startHttpServer, type HttpServerHandle } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { NodeObservability } from "../observability/node.js";
import { VERSION } from "../version.js";
import { ProxyLink } from "./proxy-link.js";
import { ATTESTATION_HEADER, attestationHeaderValue } from "../tee/sim.js";
import type { Payer } from "./payer.js";
import { judgeReceipt, sealRequest, type SealedRequestResult } from "../crypto/index.js";
import { OP_PAYMENTS, OP_WORKERS, workersReplySchema } from "../protocol/messages.js";

export const DEFAULT_CLIENT_API_PORT = 10000;
/** How long a model's verified candidate list is reused before asking the proxy again. */
const CANDIDATES_CACHE_MS = 1_000;
/**
 * After the app went away, how long the client waits for the worker to end the answer properly (final chunk and
 * signed receipt, see `cancel` in protocol/messages.ts) before it drops the stream hard.
 */
export const CANCEL_GRACE_MS = 5_000;

export interface VerifiedWorker {
  id: string;
  description: string;
  insecure: boolean;
  platform: string;
  hpkePublicKey: Uint8Array;
  receiptPublicKey: Uint8Array;
  /** The worker id and model its attestation binds, when it binds them. */
  nodeId?: string;
  model?: string;
}
export type WorkerCertVerifier = (certDer: Buffer) => Promise<Omit<VerifiedWorker, "id">>;

/** What the client knows about one sealed exchange in flight. */
interface SealedExchange {
  result: SealedRequestResult;
  candidates: VerifiedWorker[];
}
/** Largest request body an app may send. */
export const DEFAULT_MAX_BODY = 1024 * 1024;

export interface ClientOptions {
  host?: string;
  port?: number;
  proxy: { host: string; port: number };
  verifyProxy: PeerVerifier;
  identity?: TlsIdentity;
  clientId?: string;
  maxBodyBytes?: number;
  maxTokensLimit?: number;
  log?: Logger;
  /** This client's own identity is a development stand-in (sim). */
  selfInsecure?: boolean;
  /**
   * Verifies a candidate worker's RA-TLS certificate and returns its attested keys. With it, requests are
   * sealed to attested workers so the proxy sees only ciphertext (the default); without it they travel in clear.
   */
  verifyWorkerCert?: WorkerCertVerifier;
  /** Payment hook: piggybacks vouchers, signs one after each answer. */
  payer?: Payer;
  statusExtra?: () => Record<string, unknown>;
}

interface Counters {
  /** Requests the app cancelled whose answers still ended with a receipt and were paid for what was produced. */
  cancelledBilled: number;
  receiptsVerified: number;
  receiptsRefused: number;
  workersRefused: number;
  requests: number;
  completed: number;
  failed: number;
  cancelled: number;
  promptTokens: number;
  completionTokens: number;
  byStatus: Record<string, number>;
}

export class ClientNode {
  readonly startedAt = Date.now();
  readonly id: string;
  readonly link: ProxyLink;
  private readonly log: Logger;
  /** Metrics, live dashboard and operator controls, served on the API port next to /status. */
  readonly obs: NodeObservability;
  private http?: HttpServerHandle;
  /** nanoTON of paid answers, by where they went (see `account`); this process's lifetime. */
  private readonly costs = { delivered: { count: 0, nano: 0n }, cancelledByApp: { count: 0, nano: 0n } };
  private readonly stats: Counters = { cancelledBilled: 0, receiptsVerified: 0, receiptsRefused: 0, workersRefused: 0, requests: 0, completed: 0, failed: 0, cancelled: 0, promptTokens: 0, completionTokens: 0, byStatus: {} };

  constructor(private readonly opts: ClientOptions) {
    this.id = opts.clientId ?? `client-${randomBytes(4).toString("hex")}`;
    this.log = opts.log ?? createLogger("client");
    this.obs = new NodeObservability("client", this.log);
    const payer = opts.payer;
    this.link = new ProxyLink({
      ...opts.proxy,
      clientId: this.id,
      identity: opts.identity,
      verifyProxy: opts.verifyProxy,
      log: this.log,
      ...(payer?.onConnected ? { onConnected: (session: string) => payer.onConnected!((body) => this.link.call({ op: OP_PAYMENTS }, body), session) } : {}),
    });
  }

  get url(): string {
    return this.http!.url;
  }
  get port(): number {
    return this.http!.port;
  }

  async start(): Promise<void> {
    this.http = await startHttpServer(this.opts.host ?? "127.0.0.1", this.opts.port ?? DEFAULT_CLIENT_API_PORT, (req, res) => {
      this.route(req, res).catch((err) => this.fail(res, err));
    }, { maxConnectionsPerAddress: DEFAULT_HTTP_LIMITS.maxConnections }); // apps on this host all come from one address
    this.obs.attach(() => this.statusJson());
    this.link.start();
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (this.obs.handle(req, res)) return; // GET /status, /metrics, / (dashboard), /events; POST /admin/*
    if (method === "GET" && path === "/v1/models") return this.listModels(res);
    if (method === "GET" && path.startsWith("/v1/models/")) return this.getModel(res, decodeURIComponent(path.slice("/v1/models/".length)));
    if (path === "/v1/chat/completions" || path === "/v1/completions") {
      if (method !== "POST") throw new ApiError(405, `Use POST for ${path}.`, "invalid_request_error", "method_not_allowed");
      return this.complete(req, res, path === "/v1/chat/completions" ? "chat" : "completions");
    }
    throw new ApiError(404, `Unknown path ${method} ${path}. This server offers POST /v1/chat/completions, POST /v1/completions, GET /v1/models and GET /status.`, "invalid_request_error", "unknown_url");
  }

  private async listModels(res: http.ServerResponse): Promise<void> {
    const { models } = await this.link.models();
    sendJson(res, 200, {
      object: "list",
      data: models.map((m) => ({ id: m.id, object: "model", created: m.created, owned_by: "cocoon", workers: m.workers, capacity: m.capacity, ...(m.contextLength ? { context_length: m.contextLength } : {}) })),
    });
  }

  private async getModel(res: http.ServerResponse, id: string): Promise<void> {
    const m = (await this.link.models()).models.find((x) => x.id === id);
    if (!m) throw new ApiError(404, `The model '${id}' does not exist or no worker serves it now.`, "invalid_request_error", "model_not_found", "model");
    sendJson(res, 200, { id: m.id, object: "model", created: m.created, owned_by: "cocoon" });
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer> {
    const limit = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > limit) throw new ApiError(413, `Request body is ${declared} bytes; the limit is ${limit}. Send a shorter prompt.`, "invalid_request_error", "request_too_large");
    const parts: Buffer[] = [];
    let total = 0;
    for await (const chunk of req) {
      total += (chunk as Buffer).length;
      if (total > limit) throw new ApiError(413, `Request body exceeds the ${limit}-byte limit. Send a shorter prompt.`, "invalid_request_error", "request_too_large");
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts);
  }

  private async complete(req: http.IncomingMessage, res: http.ServerResponse, endpoint: Endpoint): Promise<void> {
    this.stats.requests++;
    const raw = await this.readBody(req);
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      throw invalidRequest(`We could not parse the JSON body of your request: ${(err as Error).message}. Send a JSON object.`, null, "invalid_json");
    }
    const gen = parseGenerationRequest(endpoint, body, this.opts.maxTokensLimit ?? MAX_TOKENS_LIMIT);
    const { models } = await this.link.models();
    if (!models.some((m) => m.id === gen.model)) {
      const available = models.map((m) => m.id).join(", ") || "none right now";
      throw new ApiError(404, `The model '${gen.model}' does not exist or no worker serves it now. Available: ${available}.`, "invalid_request_error", "model_not_found", "model");
    }
    const requestId = `${endpoint === "chat" ? "chatcmpl" : "cmpl"}-${randomBytes(12).toString("hex")}`;
    let stream: Stream | undefined;
    let sealed: SealedExchange | undefined;
    // The app going away is a soft cancel: the worker stops generating but still ends the answer with its receipt, and
    // this client keeps reading it to the end and pays what the receipt says was produced. Client and proxy thus settle
    // every request the same way, however late the app leaves; only a worker that does not finish in time is dropped.
    const gone: AppGone = { gone: false };
    let tracked = false;
    let hardStop: NodeJS.Timeout | undefined;
    const sendCancel = () => {
      if (!stream || stream.error) return;
      this.link.conn?.sendControl({ type: "cancel", requestId });
      hardStop ??= setTimeout(() => stream?.reset("cancelled", "the app closed the connection and the answer did not end in time"), CANCEL_GRACE_MS);
      hardStop.unref();
    };
    const cancel = () => {
      if (res.writableFinished || gone.gone) return;
      gone.gone = true;
      sendCancel();
    };
    res.on("close", cancel);
    try {
      const payer = this.opts.payer;
      let payment = await payer?.beforeRequest(gen.model, gen.maxTokens);
      let reply: InferenceReply | undefined;
      let reconciled = false;
      // A sealed request names its candidates; if they all left meanwhile, seal again to a fresh list once.
      for (let attempt = 0; !reply; attempt++) {
        sealed = this.opts.verifyWorkerCert ? await this.seal(raw, gen.model, requestId, attempt > 0) : undefined;
        const payload = sealed ? sealed.result.bytes : raw;
        stream = await this.link.open({
          op: OP_INFERENCE,
          requestId,
          endpoint,
          model: gen.model,
          maxTokens: gen.maxTokens,
          bodyBytes: payload.length,
          ...(sealed ? { sealed: true, candidates: sealed.candidates.map((c) => c.id) } : {}),
          ...(payment ? { payment } : {}),
        });
        if (gone.gone) sendCancel();
        if (sealed) {
          payer?.track?.(requestId, { model: gen.model, maxTokens: gen.maxTokens, requestDigest: sealed.result.requestDigest, receiptKeys: sealed.candidates.map((c) => c.receiptPublicKey) });
          tracked = true;
        }
        try {
          await stream.write(payload);
          stream.end();
          reply = parseMessage(inferenceReplySchema, await stream.replyHead(), "reply head from the proxy");
        } catch (err) {
          const code = err instanceof StreamError ? err.code : undefined;
          // The proxy says it charged answers this client has not paid: settle that (pay what checks out, dispute the
          // rest) and try once more. The app never sees a debt it could not act on.
          if (code === "voucher_missing" && !reconciled && payer?.reconcile) {
            reconciled = true;
            await payer.reconcile();
            payment = await payer.beforeRequest(gen.model, gen.maxTokens);
            continue;
          }
          if (!(sealed && attempt === 0 && code === "no_worker")) throw err;
        }
      }
      const headers = {
        ...this.baseHeaders(requestId),
        "x-cocoon-worker": reply.worker,
        ...attestationHeader(this.link.peer, reply, this.opts.selfInsecure ?? false),
        "x-cocoon-sealed": sealed ? "true" : "false (request and answer visible to the proxy)",
      };
      if (sealed) sealed.result.opener.preferWorker(reply.worker);
      const answer = new Answer(stream!, sealed, gone);
      if (body.stream === true) await this.streamAnswer(res, answer, gen, requestId, wantsStreamUsage(body), headers);
      else await this.collectAnswer(res, answer, gen, requestId, headers);
    } catch (err) {
      // Ended without an answer this client settled: whether the proxy charged it, reconciliation will tell.
      if (tracked) this.opts.payer?.abandon?.(requestId);
      if (gone.gone || (err instanceof StreamError && err.code === "cancelled" && res.destroyed)) {
        this.stats.cancelled++;
        this.obs.request({ model: gen.model, requestId, outcome: "cancelled", code: "cancelled" });
        return;
      }
      this.obs.request({ model: gen.model, requestId, outcome: "failed", code: toApiError(err).code ?? String(toApiError(err).status) });
      throw err;
    } finally {
      res.off("close", cancel);
      if (hardStop) clearTimeout(hardStop);
    }
  }

  /** Seals the body to the attested candidates the proxy offers for the model. */
  private async seal(raw: Buffer, model: string, requestId: string, refresh: boolean): Promise<SealedExchange> {
    const candidates = await this.candidates(model, refresh);
    if (candidates.length === 0) {
      throw new ApiError(503, `No attested worker for '${model}' is available to seal this request to${this.lastRefusal ? ` (last refusal: ${this.lastRefusal})` : ""}.`, "service_unavailable", "no_worker");
    }
    const result = await sealRequest(raw, candidates.map((c) => ({ workerId: c.id, hpkePublicKey: c.hpkePublicKey })), { requestId, model });
    return { result, candidates };
  }

  private readonly candidateCache = new Map<string, { at: number; list: VerifiedWorker[] }>();
  /** One refresh per model at a time: concurrent requests share it (no stampede when the cache expires). */
  private readonly candidateRefresh = new Map<string, Promise<VerifiedWorker[]>>();
  private lastRefusal: string | undefined;

  /**
   * The proxy's candidates for a model, each verified here from its own RA-TLS certificate; cached for
   * CANDIDATES_CACHE_MS (a restarted worker has new keys: a longer-lived list would seal to keys it no longer has).
   */
  private async candidates(model: string, refresh: boolean): Promise<VerifiedWorker[]> {
    const cached = this.candidateCache.get(model);
    if (!refresh && cached && Date.now() - cached.at < CANDIDATES_CACHE_MS) return cached.list;
    let running = this.candidateRefresh.get(model);
    if (!running) {
      running = this.fetchCandidates(model).finally(() => this.candidateRefresh.delete(model));
      this.candidateRefresh.set(model, running);
    }
    return running;
  }

  private async fetchCandidates(model: string): Promise<VerifiedWorker[]> {
    const head = await this.link.call({ op: OP_WORKERS, model });
    const { workers } = parseMessage(workersReplySchema, head, "workers reply");
    const verified = await Promise.all(
      workers.map(async (w) => {
        try {
          const v = await this.opts.verifyWorkerCert!(Buffer.from(w.cert, "base64"));
          // The proxy names the candidates; the attestation says who and what they are.
          if (v.nodeId !== undefined && v.nodeId !== w.id) throw new Error(`the proxy lists it under id ${w.id}, but its attestation binds ${v.nodeId}`);
          if (v.model !== undefined && v.model !== model) throw new Error(`it is attested to serve ${v.model}, not ${model}`);
          return { id: w.id, ...v };
        } catch (err) {
          this.lastRefusal = `worker ${w.id}: ${(err as Error).message}`;
          this.stats.workersRefused++;
          this.log.warn(`refusing to seal to ${this.lastRefusal}`);
          return undefined;
        }
      }),
    );
    const list = verified.filter((v): v is VerifiedWorker => v !== undefined);
    this.candidateCache.set(model, { at: Date.now(), list });
    return list;
  }

  /** Checks the worker-signed receipt of a sealed answer before anything is paid for it. */
  private checkReceipt(answer: Answer, gen: GenerationRequest, trailer: InferenceTrailer, requestId: string): string | undefined {
    const sealed = answer.sealed;
    if (!sealed) return undefined;
    const worker = sealed.candidates.find((c) => c.id === sealed.result.opener.workerId);
    if (!worker) return "the answer came from a worker the request was not sealed to";
    const billed = totalCostOf(trailer);
    return judgeReceipt(
      trailer.receipt,
      {
        requestId,
        model: gen.model,
        maxTokens: gen.maxTokens,
        requestDigest: sealed.result.requestDigest,
        responseDigest: sealed.result.opener.responseDigest,
        workerId: worker.id,
        sealedRequestBytes: sealed.result.bytes.length,
        sealedAnswerBytes: answer.receivedBytes,
        ...(billed !== undefined ? { billedCostNano: billed } : {}),
      },
      [worker.receiptPublicKey],
      trailer.usage,
    );
  }

  private baseHeaders(requestId: string): Record<string, string> {
    return { "x-request-id": requestId };
  }

  private async collectAnswer(res: http.ServerResponse, answer: Answer, gen: GenerationRequest, id: string, headers: Record<string, string>): Promise<void> {
    let text = "";
    for await (const delta of answer) text += delta;
    const trailer = await this.finish(answer, gen, id);
    if (answer.appGone || res.destroyed) return this.account(trailer, false);
    const created = Math.floor(Date.now() / 1000);
    const finish = trailer.finishReason === "length" ? "length" : "stop";
    const usage = usageOf(trailer);
    const out =
      gen.endpoint === "chat"
        ? { id, object: "chat.completion", created, model: gen.model, choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finish }], usage }
        : { id, object: "text_completion", created, model: gen.model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], usage };
    sendJson(res, 200, out, { ...headers, ...timingHeaders(trailer), ...(answer.sealed ? { "x-cocoon-receipt": answer.receiptProblem ? `refused: ${answer.receiptProblem}` : "verified" } : {}) });
    this.account(trailer, !res.destroyed);
  }

  /**
   * Where the cost of a paid answer went: into an answer the app received (delivered), or nowhere because the app had
   * left (it is still paid: the worker produced it). The two add up to what the client paid for answers.
   */
  private account(trailer: InferenceTrailer, delivered: boolean): void {
    const cost = totalCostOf(trailer);
    if (!this.opts.payer || cost === undefined) return;
    const c = delivered ? this.costs.delivered : this.costs.cancelledByApp;
    c.count++;
    c.nano += cost;
  }

  private async streamAnswer(res: http.ServerResponse, answer: Answer, gen: GenerationRequest, id: string, includeUsage: boolean, headers: Record<string, string>): Promise<void> {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", ...headers });
    res.flushHeaders();
    const created = Math.floor(Date.now() / 1000);
    const usageField = includeUsage ? { usage: null } : {};
    const chunk = (choice: Record<string, unknown>) =>
      gen.endpoint === "chat"
        ? { id, object: "chat.completion.chunk", created, model: gen.model, choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }], ...usageField }
        : { id, object: "text_completion", created, model: gen.model, choices: [{ index: 0, logprobs: null, finish_reason: null, ...choice }], ...usageField };
    // Once the app is gone, the answer is still read to its end (and paid), just not written anywhere.
    const write = async (obj: unknown) => {
      if (answer.appGone || res.destroyed) return;
      if (!res.write(sseData(JSON.stringify(obj)))) await drainOrClose(res);
    };
    try {
      if (gen.endpoint === "chat") await write(chunk({ delta: { role: "assistant", content: "" } }));
      for await (const text of answer) {
        await write(chunk(gen.endpoint === "chat" ? { delta: { content: text } } : { text }));
      }
      const trailer = await this.finish(answer, gen, id);
      const finish = trailer.finishReason === "length" ? "length" : "stop";
      await write(chunk(gen.endpoint === "chat" ? { delta: {}, finish_reason: finish } : { text: "", finish_reason: finish }));
      if (includeUsage) {
        const base = gen.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
        await write({ id, object: base, created, model: gen.model, choices: [], usage: usageOf(trailer) });
      }
      this.account(trailer, !answer.appGone && !res.destroyed);
      if (!res.destroyed) res.end("data: [DONE]\n\n");
    } catch (err) {
      if (res.destroyed || answer.appGone) throw err;
      // This answer ended without one this client could settle (the proxy may have charged it): reconciliation decides.
      this.opts.payer?.abandon?.(id);
      // Headers are gone already: report the failure in-band, as OpenAI does, then close the stream.
      const apiErr = toApiError(err);
      this.count(apiErr.status);
      this.stats.failed++;
      this.obs.request({ model: gen.model, requestId: id, outcome: "failed", code: apiErr.code ?? String(apiErr.status) });
      res.end(sseData(JSON.stringify(apiErr.toJSON())));
    }
  }

  /** Validates the end of an answer: trailer, and for sealed answers the worker's signed receipt. */
  private async finish(answer: Answer, gen: GenerationRequest, requestId: string): Promise<InferenceTrailer> {
    const trailer = parseMessage(inferenceTrailerSchema, answer.stream.trailer, "proxy trailer");
    if (answer.sealed) {
      answer.receiptProblem = this.checkReceipt(answer, gen, trailer, requestId);
      if (answer.receiptProblem) {
        this.stats.receiptsRefused++;
        this.log.warn(`refusing the usage receipt of worker ${answer.sealed.result.opener.workerId} for ${requestId}: ${answer.receiptProblem}; this request will not be paid`);
      } else this.stats.receiptsVerified++;
    }
    await this.opts.payer?.afterAnswer({
      requestId,
      model: gen.model,
      usage: trailer.usage,
      cost: trailer.cost,
      receiptOk: !!answer.sealed && !answer.receiptProblem,
      workerId: trailer.worker,
    });
    if (answer.appGone) {
      this.stats.cancelledBilled++;
    } else {
      this.stats.completed++;
      this.count(200);
    }
    this.stats.promptTokens += trailer.usage.prompt_tokens;
    this.stats.completionTokens += trailer.usage.completion_tokens;
    this.obs.request({ model: gen.model, requestId, outcome: answer.appGone ? "cancelled" : "completed", ttftMs: trailer.timings?.ttftMs, totalMs: trailer.timings?.proxyMs ?? trailer.timings?.totalMs, promptTokens: trailer.usage.prompt_tokens, completionTokens: trailer.usage.completion_tokens, ...evidenceOf(answer, trailer) });
    return trailer;
  }

  private count(status: number): void {
    this.stats.byStatus[status] = (this.stats.byStatus[status] ?? 0) + 1;
  }

  private fail(res: http.ServerResponse, err: unknown): void {
    const apiErr = toApiError(err);
    if (apiErr.status >= 500 && !(err instanceof ApiError) && !(err instanceof StreamError)) this.log.error(`internal error: ${(err as Error).stack ?? err}`);
    if (apiErr.status === 499) {
      this.stats.cancelled++;
      return;
    }
    this.count(apiErr.status);
    this.stats.failed++;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // Busy or briefly unavailable: say when to come back (the official SDKs honour Retry-After).
    const retryAfter = apiErr.status === 429 || apiErr.status === 503 ? (/retry-after (\d+)/.exec(apiErr.message)?.[1] ?? "1") : undefined;
    sendJson(res, apiErr.status, apiErr.toJSON(), retryAfter ? { "retry-after": retryAfter } : {});
  }

  statusJson(): Record<string, unknown> {
    const l = this.link;
    return {
      role: "client",
      version: VERSION,
      id: this.id,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      api: this.http ? `${this.http.url}/v1` : undefined,
      peers: [
        {
          role: "proxy",
          address: l.address,
          connected: l.connected,
          ...(l.peer ? { peer: l.peer.description, insecure: l.peer.insecure } : {}),
          ...(l.connectedSince ? { connectedSince: new Date(l.connectedSince).toISOString() } : {}),
          ...(l.conn?.rttMs !== undefined ? { rttMs: l.conn.rttMs } : {}),
          ...(l.lastError ? { lastError: l.lastError } : {}),
        },
      ],
      requests: { total: this.stats.requests, completed: this.stats.completed, failed: this.stats.failed, cancelled: this.stats.cancelled, cancelledBilled: this.stats.cancelledBilled, byStatus: this.stats.byStatus },
      tokens: { prompt: this.stats.promptTokens, completion: this.stats.completionTokens },
      sealing: this.opts.verifyWorkerCert
        ? { enabled: true, receipts: { verified: this.stats.receiptsVerified, refused: this.stats.receiptsRefused }, workersRefused: this.stats.workersRefused, ...(this.lastRefusal ? { lastRefusal: this.lastRefusal } : {}) }
        : { enabled: false, warning: "requests and answers travel in clear through the proxy" },
      errors: this.stats.failed,
      ...(this.opts.payer ? { costs: { delivered: { count: this.costs.delivered.count, nano: this.costs.delivered.nano.toString() }, cancelledByApp: { count: this.costs.cancelledByApp.count, nano: this.costs.cancelledByApp.nano.toString() } } } : {}),
      ...(this.opts.payer?.status ? { payments: this.opts.payer.status() } : {}),
      ...(this.opts.statusExtra?.() ?? {}),
    };
  }

  async stop(): Promise<void> {
    this.obs.close();
    await this.http?.close();
    // While the proxy link is still up: the payer hands the proxy its newest voucher.
    await this.opts.payer?.close?.();
    this.link.stop();
  }

  /**
   * Graceful shutdown, first half (SIGTERM): the API stops listening, and a new request on a connection that is
   * still open gets 503 "shutting_down" (GET /status still answers); running requests go on until they ended or
   * `timeoutMs` passed. stop() does the rest.
   */
  async drain(timeoutMs: number): Promise<void> {
    const server = this.http?.server;
    if (!server || !server.listening) return;
    const serve = server.listeners("request") as http.RequestListener[];
    server.removeAllListeners("request");
    server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (req.method === "GET" && (req.url ?? "").split("?")[0] === "/status") {
        for (const l of serve) l.call(server, req, res);
        return;
      }
      const err = new ApiError(503, `This Cocoon client is shutting down and takes no new requests; retry in a moment (or through another client).`, "service_unavailable", "shutting_down");
      sendJson(res, 503, err.toJSON(), { connection: "close", "retry-after": "5" });
    });
    // close() stops listening and ends idle keep-alive connections; its callback runs once the last one ended.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const idle = setInterval(() => server.closeIdleConnections(), 100);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)));
    const late = await Promise.race([closed.then(() => false), timedOut]);
    clearInterval(idle);
    clearTimeout(timer);
    if (late) this.log.warn(`drain timeout: requests still running after ${Math.round(timeoutMs / 1000)} s will be cut off`);
    else this.log.info("drained: no request is running");
  }
}

/**
 * Tells the app what protected its request: the proxy's and worker's attestation, and loudly when any
 * of them (or this client) is the sim development stand-in.
 */
function attestationHeader(proxy: PeerInfo | undefined, reply: InferenceReply, selfInsecure: boolean): Record<string, string> {
  const proxyPart = proxy ? attestationHeaderValue({ platform: String(proxy.platform ?? "unattested"), insecure: proxy.insecure }) : "unknown";
  const workerPart = attestationHeaderValue({ platform: reply.workerPlatform, insecure: reply.workerInsecure });
  const parts = [`proxy=${proxyPart}`, `worker=${workerPart}`];
  const insecure = selfInsecure || proxy?.insecure === true || reply.workerInsecure;
  if (insecure) parts.push("INSECURE (sim development stand-in)");
  return { [ATTESTATION_HEADER]: parts.join("; ") };
}

/** Whether the app closed its HTTP connection before the answer was complete. */
interface AppGone {
  gone: boolean;
}

/** Resolves when a response can take more data, or when it closed (an app that left never drains). */
function drainOrClose(res: http.ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

/** The answer stream as text deltas: opens sealed chunks, checks nothing was dropped or cut off. */
class Answer {
  /** Bytes of the answer chunks as they arrived (sealed), the size the receipt judgment uses. */
  receivedBytes = 0;
  receiptProblem: string | undefined;

  constructor(
    readonly stream: Stream,
    readonly sealed: SealedExchange | undefined,
    private readonly app: AppGone = { gone: false },
  ) {}

  get appGone(): boolean {
    return this.app.gone;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<string> {
    const opener = this.sealed?.result.opener;
    for await (const chunk of this.stream) {
      this.receivedBytes += chunk.length;
      let data: Uint8Array = chunk;
      if (opener) {
        try {
          data = opener.openChunk(chunk).data;
        } catch (err) {
          this.stream.reset("bad_request", "answer chunk failed authentication");
          throw new StreamError("worker_failed", `a sealed answer chunk failed its integrity check (${(err as Error).message}); the answer was tampered with on the way`);
        }
      }
      for (const text of decodeAnswerChunk(data)) {
        if (text) yield text;
      }
    }
    if (opener && !opener.finished) {
      throw new StreamError("worker_failed", "the sealed answer ended without its final chunk: it was cut off on the way");
    }
  }
}

/** Who served an answer, what it cost and what proved the worker (for the dashboard's recent requests). */
function evidenceOf(answer: Answer, t: InferenceTrailer): { worker?: string; costNano?: string; evidence?: string } {
  const w = answer.sealed?.candidates.find((c) => c.id === t.worker);
  const receipt = answer.sealed ? (answer.receiptProblem ? `receipt refused: ${answer.receiptProblem}` : "receipt verified") : "not sealed";
  return {
    ...(t.worker ? { worker: t.worker } : {}),
    ...(t.cost?.total_cost ? { costNano: t.cost.total_cost } : {}),
    evidence: w ? `${w.platform}${w.insecure ? " (INSECURE sim stand-in)" : ""}: ${w.description}; ${receipt}` : receipt,
  };
}

/** The proxy's total cost of an answer (nanoTON), when its trailer carries a well-formed one. */
function totalCostOf(t: InferenceTrailer): bigint | undefined {
  const c = t.cost?.total_cost;
  return c !== undefined && /^[0-9]+$/.test(c) ? BigInt(c) : undefined;
}

function usageOf(t: InferenceTrailer): Record<string, unknown> {
  const usage: Record<string, unknown> = { ...t.usage };
  // Costs in nanoTON as integers, named as the original Cocoon names them.
  for (const [k, v] of Object.entries(t.cost ?? {})) usage[k] = Number(v);
  return usage;
}

function timingHeaders(t: InferenceTrailer): Record<string, string> {
  const h: Record<string, string> = {};
  if (t.worker) h["x-cocoon-worker"] = t.worker;
  for (const [k, v] of Object.entries(t.timings ?? {})) h[`x-cocoon-${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`] = String(v);
  return h;
}

/** Maps any failure to the OpenAI error an app should see. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CocoonError) {
    const status = err.status;
    const type = status === 400 || status === 404 || status === 413 ? "invalid_request_error" : status === 429 ? "rate_limit_error" : status === 402 ? "insufficient_quota" : "api_error";
    return new ApiError(status, err.message, type, err.code);
  }
  return new ApiError(500, `Internal error in the Cocoon client: ${(err as Error)?.message ?? String(err)}`, "api_error", "internal_error");
}
