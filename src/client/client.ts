// The client role: an OpenAI-compatible HTTP API for apps (chat completions, completions, models; SSE
// streaming) in front of one proxy connection. Apps use the official SDKs unchanged.
import { sumPaymentViews } from "../payments/summary.js";
import { randomBytes } from "node:crypto";
import type http from "node:http";
import type { Stream } from "../protocol/connection.js";
import { StreamError } from "../protocol/connection.js";
import { CocoonError, type ErrorCode } from "../protocol/errors.js";
import { inferenceReplySchema, inferenceTrailerSchema, OP_INFERENCE, parseMessage, type InferenceReply, type InferenceTrailer } from "../protocol/messages.js";
import { ApiError, invalidRequest, MAX_TOKENS_LIMIT, parseEmbeddingRequest, parseGenerationRequest, parseTranscriptionRequest, wantsStreamUsage, type EmbeddingRequest, type Endpoint, type GenerationRequest, type TranscriptionRequest } from "../protocol/openai.js";
import { boundaryOf, parseMultipart } from "../util/multipart.js";
import { MAX_APP_JSON_BODY, MAX_AUDIO_UPLOAD } from "../protocol/limits.js";
import { sseData } from "../protocol/sse.js";
import { decodeAnswerChunk, type AnswerDelta } from "../protocol/answer-chunk.js";
import { AnswerCollector, ChunkShaper, EmbeddingCollector, apiFinishReason } from "./openai-answer.js";
import type { PeerInfo, PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { CorsPolicy, DEFAULT_HTTP_LIMITS, decodeUtf8Strict, isJsonContentType, sendJson, startHttpServer, type HttpServerHandle } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { NodeObservability } from "../observability/node.js";
import { countUsage, newRequestCounters, tokensView, type RequestCounters } from "../observability/request-counters.js";
import { VERSION } from "../version.js";
import { ProxyLink } from "./proxy-link.js";
import { DEFAULT_MAX_LINKS, describeTarget, ProxySet, type ProxyRoute, type ProxyTarget } from "./proxy-set.js";
import type { ProxyDirectory } from "./discovery.js";
import { COEFFICIENT_BASE, DEFAULT_MAX_COEFFICIENT, MAX_COEFFICIENT } from "../payments/pricing.js";
import { ATTESTATION_HEADER, attestationHeaderValue } from "../tee/sim.js";
import type { Payer } from "./payer.js";
import { judgeReceipt, sealRequest, type SealedRequestResult } from "../crypto/index.js";
import { OP_PAYMENTS, OP_WORKERS, paymentsReplySchema, workersReplySchema, type ModelsReply } from "../protocol/messages.js";

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
  /** The price coefficient the proxy lists for it (its receipts must price at it). */
  priceCoefficient?: number;
}
export type WorkerCertVerifier = (certDer: Buffer) => Promise<Omit<VerifiedWorker, "id">>;

/** What the client knows about one sealed exchange in flight. */
interface SealedExchange {
  result: SealedRequestResult;
  candidates: VerifiedWorker[];
}

export interface ClientOptions {
  host?: string;
  port?: number;
  /** A pinned proxy (`--proxy`). Either this or `directory`. */
  proxy?: { host: string; port: number };
  /** The root's list of registered proxies (`--root`): the client links to several and follows changes. */
  directory?: Pick<ProxyDirectory, "targets" | "onChange" | "status">;
  /** Most proxies linked at once (DEFAULT_MAX_LINKS in proxy-set.ts). */
  maxProxyLinks?: number;
  /**
   * Verifies a proxy's certificate. With a directory, `verifyProxyFor` (when given) builds the verifier for each
   * registered proxy (e.g. binding it to its registered contract); otherwise `verifyProxy` serves all.
   */
  verifyProxy: PeerVerifier;
  verifyProxyFor?: (target: ProxyTarget) => PeerVerifier;

  identity?: TlsIdentity;
  clientId?: string;
  maxBodyBytes?: number;
  log?: Logger;
  /** This client's own identity is a development stand-in (sim). */
  selfInsecure?: boolean;
  /**
   * Verifies a candidate worker's RA-TLS certificate and returns its attested keys. With it, requests are
   * sealed to attested workers so the proxy sees only ciphertext (the default); without it they travel in clear.
   */
  verifyWorkerCert?: WorkerCertVerifier;
  /**
   * Most this client pays, as a price coefficient (thousandths of the root's base price; default 4000, the original's):
   * a ceiling that a request's own `max_coefficient` (field or x-cocoon-max-coefficient header) can only lower.
   */
  maxCoefficient?: number;
  /** Payment hook: piggybacks vouchers, signs one after each answer. With several proxies see `payerFor`. */
  payer?: Payer;
  /**
   * The payer of each proxy (a channel per proxy contract), asked when the proxy is linked; a proxy without one, or
   * whose payer says it cannot pay now (`unavailable`: its channel is being opened), is not used while payments are
   * on. Without it, `payer` serves every proxy.
   */
  payerFor?: (target: ProxyTarget) => Payer | undefined;

  statusExtra?: () => Record<string, unknown>;
  /** Origins browser apps may call this API from ("*" for any); pages on this machine are always allowed. */
  corsOrigins?: string[];
  /** Longest a request may run before it is cancelled and answered 504 (default REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /**
   * Most app HTTP connections open at once (default DEFAULT_HTTP_LIMITS.maxConnections, 2048); more are closed at
   * accept. A streaming answer holds its connection for as long as it streams, so thousands of long streams need more.
   */
  maxAppConnections?: number;
}

/** Default of ClientOptions.requestTimeoutMs: long enough for a long answer from a slow engine. */
export const REQUEST_TIMEOUT_MS = 10 * 60_000;
/** Response headers a browser app may read (CORS). */
const EXPOSED_HEADERS = ["x-request-id", "x-cocoon-worker", "x-cocoon-proxy", "x-cocoon-attestation", "x-cocoon-sealed", "x-cocoon-receipt", "x-cocoon-ttft-ms", "x-cocoon-total-ms", "retry-after"];

/** The routes of the API and the methods each takes (for Allow and CORS preflight). */
const ROUTES: { match: (path: string) => boolean; methods: string[] }[] = [
  { match: (p) => p === "/status" || p === "/v1/models" || p.startsWith("/v1/models/"), methods: ["GET", "HEAD", "OPTIONS"] },
  { match: (p) => p === "/v1/chat/completions" || p === "/v1/completions" || p === "/v1/embeddings" || p === "/v1/audio/transcriptions", methods: ["POST", "OPTIONS"] },
];

/** One parsed app request: a generation (chat, completions) or an embeddings request. */
type AppRequest =
  | { endpoint: "chat" | "completions"; gen: GenerationRequest; model: string; budget: number; stream: boolean; includeUsage: boolean }
  | { endpoint: "embeddings"; emb: EmbeddingRequest; model: string; budget: number; stream: false; includeUsage: false }
  | { endpoint: "transcriptions"; tr: TranscriptionRequest; model: string; budget: number; stream: false; includeUsage: false };


interface Counters extends RequestCounters {
  /** Requests the app cancelled whose answers still ended with a receipt and were paid for what was produced. */
  cancelledBilled: number;
  receiptsVerified: number;
  receiptsRefused: number;
  workersRefused: number;
  /** Requests that moved to another proxy before any answer byte came back. */
  proxyRetries: number;
  byStatus: Record<string, number>;
}

export class ClientNode {
  readonly startedAt = Date.now();
  readonly id: string;
  readonly proxies: ProxySet;
  private readonly log: Logger;
  private readonly payers = new Map<string, Payer>();
  private tendTimer: NodeJS.Timeout | undefined;
  /** Metrics, live dashboard and operator controls, served on the API port next to /status. */
  readonly obs: NodeObservability;
  private http?: HttpServerHandle;
  private readonly cors: CorsPolicy;
  /** nanoTON of paid answers, by where they went (see `account`); this process's lifetime. */
  private readonly costs = { delivered: { count: 0, nano: 0n }, cancelledByApp: { count: 0, nano: 0n } };
  private readonly stats: Counters = { ...newRequestCounters(), cancelledBilled: 0, receiptsVerified: 0, receiptsRefused: 0, workersRefused: 0, proxyRetries: 0, byStatus: {} };

  constructor(private readonly opts: ClientOptions) {
    this.id = opts.clientId ?? `client-${randomBytes(4).toString("hex")}`;
    this.log = opts.log ?? createLogger("client");
    this.cors = new CorsPolicy(opts.corsOrigins);
    this.obs = new NodeObservability("client", this.log);
    if (!opts.proxy && !opts.directory) throw new Error("a client needs a proxy: pin one (--proxy HOST:PORT) or read them from the root (--root ADDRESS)");
    this.proxies = new ProxySet({ makeLink: (t) => this.makeLink(t), maxLinks: opts.maxProxyLinks, log: this.log });
    if (opts.directory) {
      this.proxies.setTargets(opts.directory.targets);
      opts.directory.onChange((targets) => this.proxies.setTargets(targets));
    } else {
      const p = opts.proxy!;
      this.proxies.setTargets([{ key: `${p.host}:${p.port}`, host: p.host, port: p.port }]);
    }
  }

  private makeLink(target: ProxyTarget): ProxyLink {
    const payer = this.opts.payerFor ? this.opts.payerFor(target) : this.opts.payer;
    if (payer) this.payers.set(target.key, payer);
    else this.payers.delete(target.key);
    const link: ProxyLink = new ProxyLink({
      host: target.host,
      port: target.port,
      clientId: this.id,
      identity: this.opts.identity,
      verifyProxy: this.opts.directory && this.opts.verifyProxyFor ? this.opts.verifyProxyFor(target) : this.opts.verifyProxy,
      log: this.log,
      ...(payer?.onConnected ? { onConnected: (session: string) => payer.onConnected!(async (body) => parseMessage(paymentsReplySchema, await link.call({ op: OP_PAYMENTS }, body), "payments reply"), session) } : {}),
    });
    return link;
  }

  /** The first proxy link (the only one with a pinned proxy). */
  get link(): ProxyLink {
    const r = this.proxies.all[0];
    if (!r) throw new ApiError(503, "This client has no proxy link: the root registers no proxy it can use yet.", "service_unavailable", "proxy_unavailable");
    return r.link;
  }

  /** The price cap of a request: its `max_coefficient` field, else its header, else none; never above the config's. */
  private maxCoefficientOf(body: Record<string, unknown>, req: http.IncomingMessage): number {
    const ceiling = this.opts.maxCoefficient ?? DEFAULT_MAX_COEFFICIENT;
    const header = req.headers["x-cocoon-max-coefficient"];
    const given = body.max_coefficient ?? (typeof header === "string" ? (/^\d{1,9}$/.test(header.trim()) ? Number(header.trim()) : header) : undefined);
    if (given === undefined) return ceiling;
    if (typeof given !== "number" || !Number.isInteger(given) || given < 1 || given > MAX_COEFFICIENT) {
      throw invalidRequest(`max_coefficient must be an integer from 1 to ${MAX_COEFFICIENT} (thousandths of the base price: 1000 pays the base price, 1500 up to 1.5x), got ${JSON.stringify(given).slice(0, 40)}.`, "max_coefficient", "invalid_max_coefficient");
    }
    return Math.min(given, ceiling);
  }

  /** Payments are on: every proxy used must have its own payer (channel). */
  private get paying(): boolean {
    return !!this.opts.payer || !!this.opts.payerFor;
  }

  private payerOf(route: ProxyRoute): Payer | undefined {
    return this.payers.get(route.target.key);
  }

  /** With payments on, a proxy takes requests only while its payer can pay (an open channel; none while opening). */
  private canPay(route: ProxyRoute): boolean {
    if (!this.paying) return true;
    const p = this.payerOf(route);
    return !!p && p.unavailable?.() === undefined;
  }


  get url(): string {
    return this.http!.url;
  }
  get port(): number {
    return this.http!.port;
  }

  private get maxAppConnections(): number {
    return this.opts.maxAppConnections ?? DEFAULT_HTTP_LIMITS.maxConnections;
  }

  async start(): Promise<void> {
    this.http = await startHttpServer(this.opts.host ?? "127.0.0.1", this.opts.port ?? DEFAULT_CLIENT_API_PORT, (req, res) => {
      // Every response names its request (errors included), so an app's report can be matched to the logs.
      res.setHeader("x-request-id", `req_${randomBytes(12).toString("hex")}`);
      this.route(req, res).catch((err) => this.fail(res, err));
    }, { maxConnections: this.maxAppConnections, maxConnectionsPerAddress: this.maxAppConnections }); // apps on this host all come from one address
    this.obs.attach(() => this.statusJson());
    this.proxies.start();
    this.tendTimer = setInterval(() => this.proxies.tend(), 1_000);
    this.tendTimer.unref();
  }

  /**
   * The proxy for the next attempt: the healthiest connected one not tried yet for this request (waiting a moment
   * for a link to come up), or the error to give the app.
   */
  private async pickRoute(tried: ReadonlySet<string>, lastErr: unknown): Promise<ProxyRoute> {
    const untried = this.proxies.all.filter((r) => !tried.has(r.target.key) && this.canPay(r));
    if (untried.length === 0 && lastErr !== undefined) throw lastErr;
    const r = untried.length ? await this.proxies.waitUsable(tried.size ? 1_000 : 3_000, new Set([...tried, ...this.proxies.all.filter((x) => !this.canPay(x)).map((x) => x.target.key)])) : undefined;
    if (r) return r;
    if (lastErr !== undefined) throw lastErr;
    const links = this.proxies.all;
    // A pinned proxy: its link says why it is not connected.
    if (!this.opts.directory && links.length === 1) await links[0]!.link.connection(0);
    const why = links.length === 0
      ? "no registered proxy is linked yet"
      : links.map((l) => `${describeTarget(l.target)}: ${this.canPay(l) ? (l.link.lastError ?? "not connected") : (this.payerOf(l)?.unavailable?.() ?? "no open payment channel with it")}`).join("; ");
    throw new ApiError(503, `Not connected to any proxy (${why}). Check that the proxy runs and --proxy points at its client port, or that the root registers reachable proxies.`, "service_unavailable", "proxy_unavailable");
  }

  /** Models over every connected proxy: a model is listed once, with workers and capacity summed. */
  private async allModels(): Promise<ModelsReply["models"]> {
    const routes = this.proxies.all.filter((r) => r.link.connected);
    if (routes.length === 0) return (await this.link.models()).models; // throws the 503 that says why
    const replies = await Promise.allSettled(routes.map((r) => r.link.models()));
    const byId = new Map<string, ModelsReply["models"][number]>();
    let firstErr: unknown;
    for (const rep of replies) {
      if (rep.status === "rejected") {
        firstErr ??= rep.reason;
        continue;
      }
      for (const m of rep.value.models) {
        const have = byId.get(m.id);
        byId.set(m.id, have ? {
          // A worker serves every proxy it is linked to within one capacity, so the same workers appear in each
          // proxy's list: the largest count is the best estimate (a sum would count each worker once per proxy).
          ...have, workers: Math.max(have.workers, m.workers), capacity: Math.max(have.capacity, m.capacity),
          ...(m.minCoefficient !== undefined ? { minCoefficient: Math.min(have.minCoefficient ?? m.minCoefficient, m.minCoefficient) } : {}),
          ...(m.maxCoefficient !== undefined ? { maxCoefficient: Math.max(have.maxCoefficient ?? m.maxCoefficient, m.maxCoefficient) } : {}),
        } : m);
      }
    }
    if (byId.size === 0 && firstErr) throw firstErr;
    return [...byId.values()];
  }



  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const route = ROUTES.find((r) => r.match(path));
    if (method === "OPTIONS" && route) return this.cors.preflight(req, res, route.methods);
    if (!this.cors.apply(req, res, EXPOSED_HEADERS)) {
      throw new ApiError(403, `Cross-origin requests from ${req.headers.origin} are not allowed by this Cocoon client. Start it with --cors-origin ${req.headers.origin} to allow them.`, "invalid_request_error", "cors_origin_not_allowed");
    }
    if (this.obs.handle(req, res)) return; // GET /status, /metrics, / (dashboard), /events; POST /admin/*
    if (route && !route.methods.includes(method)) {
      res.setHeader("allow", route.methods.join(", "));
      throw new ApiError(405, `Method ${method} is not allowed for ${path}; use ${route.methods.filter((m) => m !== "OPTIONS").join(" or ")}.`, "invalid_request_error", "method_not_allowed");
    }
    // HEAD is answered like GET; Node sends the headers and leaves the body out.
    const get = method === "GET" || method === "HEAD";
    if (get && path === "/status") return sendJson(res, 200, this.statusJson());
    if (get && path === "/v1/models") return this.listModels(res);
    if (get && path.startsWith("/v1/models/")) return this.getModel(res, decodeURIComponent(path.slice("/v1/models/".length)));
    if (method === "POST" && path === "/v1/chat/completions") return this.complete(req, res, "chat");
    if (method === "POST" && path === "/v1/completions") return this.complete(req, res, "completions");
    if (method === "POST" && path === "/v1/embeddings") return this.complete(req, res, "embeddings");
    if (method === "POST" && path === "/v1/audio/transcriptions") return this.complete(req, res, "transcriptions");
    throw new ApiError(404, `Unknown path ${method} ${path}. This server offers POST /v1/chat/completions, POST /v1/completions, POST /v1/embeddings, POST /v1/audio/transcriptions, GET /v1/models and GET /status.`, "invalid_request_error", "unknown_url");
  }

  private async listModels(res: http.ServerResponse): Promise<void> {
    const models = await this.allModels();
    sendJson(res, 200, {
      object: "list",
      data: models.map((m) => ({
        id: m.id, object: "model", created: m.created, owned_by: "cocoon", workers: m.workers, capacity: m.capacity,
        ...(m.contextLength ? { context_length: m.contextLength } : {}),
        // The price market: coefficients on offer (thousandths of the root's base price) and this client's ceiling.
        ...(m.minCoefficient !== undefined ? { price_coefficient: { min: m.minCoefficient, max: m.maxCoefficient, client_max: this.opts.maxCoefficient ?? DEFAULT_MAX_COEFFICIENT } } : {}),
      })),
    });
  }


  private async getModel(res: http.ServerResponse, id: string): Promise<void> {
    const m = (await this.allModels()).find((x) => x.id === id);
    if (!m) throw new ApiError(404, `The model '${id}' does not exist or no worker serves it now.`, "invalid_request_error", "model_not_found", "model");
    sendJson(res, 200, { id: m.id, object: "model", created: m.created, owned_by: "cocoon" });
  }

  private async readBody(req: http.IncomingMessage, limit = this.opts.maxBodyBytes ?? MAX_APP_JSON_BODY): Promise<Buffer> {
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

  /** Reads a JSON body: the right content type, well-formed UTF-8, a JSON value (the schema checks the rest). */
  private async readJson(req: http.IncomingMessage): Promise<{ raw: Buffer; body: unknown }> {
    const type = req.headers["content-type"];
    if (!isJsonContentType(type)) {
      throw new ApiError(415, `Unsupported Content-Type '${type}': send the body as JSON with 'Content-Type: application/json'.`, "invalid_request_error", "unsupported_media_type");
    }
    const raw = await this.readBody(req);
    const text = decodeUtf8Strict(raw);
    if (text === undefined) throw invalidRequest("The request body is not valid UTF-8. Encode the JSON body as UTF-8.", null, "invalid_encoding");
    try {
      return { raw, body: JSON.parse(text) };
    } catch (err) {
      throw invalidRequest(`We could not parse the JSON body of your request: ${(err as Error).message}. Send a JSON object.`, null, "invalid_json");
    }
  }

  /**
   * Reads an audio transcription upload (multipart/form-data, up to what a worker accepts) and validates its fields.
   * The form travels sealed to the worker byte for byte.
   */
  private async readTranscription(req: http.IncomingMessage): Promise<{ raw: Buffer; app: AppRequest }> {
    const boundary = boundaryOf(req.headers["content-type"]);
    if (!boundary) {
      throw new ApiError(415, `Unsupported Content-Type '${req.headers["content-type"] ?? "none"}': send the audio as multipart/form-data (a 'file' field and a 'model' field), as the OpenAI SDKs do.`, "invalid_request_error", "unsupported_media_type");
    }
    const raw = await this.readBody(req, MAX_AUDIO_UPLOAD);
    let parts;
    try {
      parts = parseMultipart(raw, boundary);
    } catch (err) {
      throw invalidRequest(`We could not read the multipart form of your request: ${(err as Error).message}.`, null, "invalid_body");
    }
    const tr = parseTranscriptionRequest(parts);
    return { raw, app: { endpoint: "transcriptions", tr, model: tr.model, budget: MAX_TOKENS_LIMIT, stream: false, includeUsage: false } };
  }

  /** Validates an app's request for its endpoint. */
  private parseApp(endpoint: Exclude<Endpoint, "transcriptions">, body: unknown): AppRequest {
    if (endpoint === "embeddings") {
      const emb = parseEmbeddingRequest(body);
      return { endpoint, emb, model: emb.model, budget: 1, stream: false, includeUsage: false };
    }
    const gen = parseGenerationRequest(endpoint, body);
    const stream = gen.body?.stream === true;
    // Every choice may run to max_tokens: the proxy admits, and the payer reserves, their sum.
    return { endpoint, gen, model: gen.model, budget: gen.maxTokens * (gen.n ?? 1), stream, includeUsage: stream && !!gen.body && wantsStreamUsage(gen.body) };
  }

  private async complete(req: http.IncomingMessage, res: http.ServerResponse, endpoint: Endpoint): Promise<void> {
    this.stats.requests++;
    let raw: Buffer;
    let app: AppRequest;
    // Cocoon's own field (as the original's): read here and stripped, so the worker's strict schema never sees it.
    let capField: unknown;
    if (endpoint === "transcriptions") {
      ({ raw, app } = await this.readTranscription(req));
    } else {
      const json = await this.readJson(req);
      raw = json.raw;
      let body = json.body;
      if (typeof body === "object" && body !== null && !Array.isArray(body) && "max_coefficient" in body) {
        const { max_coefficient, ...rest } = body as Record<string, unknown>;
        capField = max_coefficient;
        body = rest;
        raw = Buffer.from(JSON.stringify(rest));
      }
      app = this.parseApp(endpoint, body);
    }
    const cap = this.maxCoefficientOf(capField === undefined ? {} : { max_coefficient: capField }, req);
    const requestId = `${{ chat: "chatcmpl", completions: "cmpl", embeddings: "emb", transcriptions: "tr" }[endpoint]}-${randomBytes(12).toString("hex")}`;
    // The attempt in progress: which proxy, its stream, what was sealed (a retry on another proxy replaces it).
    let at: Attempt | undefined;
    // The app going away is a soft cancel: the worker stops generating but still ends the answer with its receipt, and
    // this client keeps reading it to the end and pays what the receipt says was produced. Client and proxy thus settle
    // every request the same way, however late the app leaves; only a worker that does not finish in time is dropped.
    const gone: AppGone = { gone: false };
    let hardStop: NodeJS.Timeout | undefined;
    const sendCancel = () => {
      const stream = at?.stream;
      if (!stream || stream.error) return;
      at!.route.link.conn?.sendControl({ type: "cancel", requestId });
      hardStop ??= setTimeout(() => stream.reset("cancelled", "the app closed the connection and the answer did not end in time"), CANCEL_GRACE_MS);
      hardStop.unref();
    };
    const cancel = () => {
      if (res.writableFinished || gone.gone) return;
      gone.gone = true;
      sendCancel();
    };
    res.on("close", cancel);
    // The per-request timeout: cancelled like an app that left, then answered 504 (or ended in-band when streaming).
    const timeoutMs = this.opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    const timer = setTimeout(() => {
      if (res.writableFinished || gone.gone) return;
      gone.gone = true;
      gone.timedOut = true;
      sendCancel();
      const err = new ApiError(504, `The request ran longer than this client's limit of ${Math.round(timeoutMs / 1000)} s and was cancelled; ask for fewer tokens or raise --request-timeout.`, "api_error", "timeout");
      this.count(504);
      this.stats.failed++;
      if (!res.headersSent) sendJson(res, 504, err.toJSON());
      else res.end(sseData(JSON.stringify(err.toJSON())));
    }, timeoutMs);
    timer.unref();
    let outcome: { ok: true } | { ok: false; refusal?: string } = { ok: false };
    try {
      // Each proxy gets one try; one that refuses before any answer byte ("not now") passes the request on.
      const tried = new Set<string>();
      let lastErr: unknown;
      let reply: InferenceReply | undefined;
      while (!reply) {
        const route = await this.pickRoute(tried, lastErr);
        tried.add(route.target.key);
        at = { route, tracked: false };
        this.proxies.begin(route);
        try {
          reply = await this.startOn(at, raw, app, endpoint, requestId, gone, sendCancel, cap);
        } catch (err) {
          // Ended without an answer this client settled: whether that proxy charged it, reconciliation will tell.
          if (at.tracked) this.payerOf(route)?.abandon?.(requestId);
          const refusal = gone.gone ? undefined : notStartedRefusal(err);
          this.proxies.end(route, { ok: false, ...(refusal && refusal !== "model_not_found" && refusal !== "insufficient_funds" ? { refusal } : {}) });
          if (!refusal) {
            at = undefined; // already settled above
            throw err;
          }
          lastErr = err;
          at = undefined;
          this.stats.proxyRetries++;
          this.log.info(`request ${requestId} did not start on proxy ${describeTarget(route.target)} (${(err as Error).message}); trying another proxy`);
          continue;
        }
      }
      const { route, sealed } = at!;
      const headers = {
        ...this.baseHeaders(requestId),
        "x-cocoon-worker": reply.worker,
        ...(route.target.contract ? { "x-cocoon-proxy": route.target.contract } : {}),
        ...attestationHeader(route.link.peer, reply, this.opts.selfInsecure ?? false),
        "x-cocoon-sealed": sealed ? "true" : "false (request and answer visible to the proxy)",
      };
      if (sealed) sealed.result.opener.preferWorker(reply.worker);
      const answer = new Answer(at!.stream!, sealed, gone, this.payerOf(route));
      if (app.endpoint === "embeddings") await this.collectEmbeddings(res, answer, app, requestId, headers);
      else if (app.endpoint === "transcriptions") await this.collectTranscription(res, answer, app, requestId, headers);
      else if (app.stream) await this.streamAnswer(res, answer, app, requestId, headers);
      else await this.collectAnswer(res, answer, app, requestId, headers);
      outcome = { ok: true };
    } catch (err) {
      // Ended without an answer this client settled: whether the proxy charged it, reconciliation will tell.
      if (at?.tracked) this.payerOf(at.route)?.abandon?.(requestId);
      if (gone.gone || (err instanceof StreamError && err.code === "cancelled" && res.destroyed)) {
        this.stats.cancelled++;
        this.obs.request({ model: app.model, requestId, outcome: "cancelled", code: "cancelled" });
        return;
      }
      this.obs.request({ model: app.model, requestId, outcome: "failed", code: toApiError(err).code ?? String(toApiError(err).status) });
      throw err;
    } finally {
      if (at) this.proxies.end(at.route, outcome);
      res.off("close", cancel);
      clearTimeout(timer);
      if (hardStop) clearTimeout(hardStop);
    }
  }

  /**
   * One attempt on one proxy, up to the reply head (nothing has reached the app yet): the model must be offered
   * there, the payer of that proxy's channel gives the voucher to piggyback, the body is sealed to that proxy's
   * attested candidates under the price cap, and the request goes out. Returns the reply head; `at` holds the stream.
   */
  private async startOn(at: Attempt, raw: Buffer, app: AppRequest, endpoint: Endpoint, requestId: string, gone: AppGone, sendCancel: () => void, cap: number): Promise<InferenceReply> {
    const link = at.route.link;
    const { models } = await link.models();
    if (!models.some((m) => m.id === app.model)) {
      const available = models.map((m) => m.id).join(", ") || "none right now";
      throw new ApiError(404, `The model '${app.model}' does not exist or no worker serves it now. Available: ${available}.`, "invalid_request_error", "model_not_found", "model");
    }
    const payer = this.payerOf(at.route);
    let payment = await payer?.beforeRequest(app.model, app.budget, raw.length);
    let reconciled = false;
    // A sealed request names its candidates; if they all left meanwhile, seal again to a fresh list once.
    for (let attempt = 0; ; attempt++) {
      at.sealed = this.opts.verifyWorkerCert ? await this.seal(at.route, raw, app.model, requestId, attempt > 0, cap) : undefined;
      const sealed = at.sealed;
      const payload = sealed ? sealed.result.bytes : raw;
      at.stream = await link.open({
        op: OP_INFERENCE,
        requestId,
        endpoint,
        model: app.model,
        maxTokens: app.budget,
        bodyBytes: payload.length,
        ...(sealed ? { sealed: true, candidates: sealed.candidates.map((c) => c.id) } : {}),
        ...(payment ? { payment } : {}),
        maxCoefficient: cap,
      });
      if (gone.gone) sendCancel();
      if (sealed && payer?.track) {
        payer.track(requestId, {
          model: app.model, maxTokens: app.budget, requestDigest: sealed.result.requestDigest,
          receiptKeys: sealed.candidates.map((c) => c.receiptPublicKey), coefficients: sealed.candidates.map((c) => c.priceCoefficient ?? COEFFICIENT_BASE),
        });
        at.tracked = true;
      }
      try {
        await at.stream.write(payload);
        at.stream.end();
        return parseMessage(inferenceReplySchema, await at.stream.replyHead(), "reply head from the proxy");
      } catch (err) {
        const code = err instanceof StreamError ? err.code : undefined;
        // The proxy says it charged answers this client has not paid: settle that (pay what checks out, dispute the
        // rest) and try once more. The app never sees a debt it could not act on.
        if (code === "voucher_missing" && !reconciled && payer?.reconcile) {
          reconciled = true;
          await payer.reconcile();
          payment = await payer.beforeRequest(app.model, app.budget, raw.length);
          continue;
        }
        if (!(sealed && attempt === 0 && code === "no_worker")) throw err;
      }
    }
  }

  /** Seals the body to the attested candidates the proxy offers for the model. */
  private async seal(route: ProxyRoute, raw: Buffer, model: string, requestId: string, refresh: boolean, cap: number): Promise<SealedExchange> {
    const candidates = (await this.candidates(route, model, refresh, cap)).filter((c) => (c.priceCoefficient ?? COEFFICIENT_BASE) <= cap);
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
  private async candidates(route: ProxyRoute, model: string, refresh: boolean, cap: number): Promise<VerifiedWorker[]> {
    // Per proxy (each offers its own workers) and per price cap.
    const key = `${route.target.key}\n${model}\n${cap}`;
    const cached = this.candidateCache.get(key);
    if (!refresh && cached && Date.now() - cached.at < CANDIDATES_CACHE_MS) return cached.list;
    let running = this.candidateRefresh.get(key);
    if (!running) {
      running = this.fetchCandidates(route.link, key, model, cap).finally(() => this.candidateRefresh.delete(key));
      this.candidateRefresh.set(key, running);
    }
    return running;
  }

  private async fetchCandidates(link: ProxyLink, key: string, model: string, cap: number): Promise<VerifiedWorker[]> {
    const head = await link.call({ op: OP_WORKERS, model, maxCoefficient: cap });
    const { workers } = parseMessage(workersReplySchema, head, "workers reply");
    const verified = await Promise.all(
      workers.map(async (w) => {
        try {
          const v = await this.opts.verifyWorkerCert!(Buffer.from(w.cert, "base64"));
          // The proxy names the candidates; the attestation says who and what they are.
          if (v.nodeId !== undefined && v.nodeId !== w.id) throw new Error(`the proxy lists it under id ${w.id}, but its attestation binds ${v.nodeId}`);
          if (v.model !== undefined && v.model !== model) throw new Error(`it is attested to serve ${v.model}, not ${model}`);
          return { id: w.id, ...v, ...(w.priceCoefficient !== undefined ? { priceCoefficient: w.priceCoefficient } : {}) };
        } catch (err) {
          this.lastRefusal = `worker ${w.id}: ${(err as Error).message}`;
          this.stats.workersRefused++;
          this.log.warn(`refusing to seal to ${this.lastRefusal}`);
          return undefined;
        }
      }),
    );
    const list = verified.filter((v): v is VerifiedWorker => v !== undefined);
    this.candidateCache.set(key, { at: Date.now(), list });
    return list;
  }

  /** Checks the worker-signed receipt of a sealed answer before anything is paid for it. */
  private checkReceipt(answer: Answer, app: AppRequest, trailer: InferenceTrailer, requestId: string): string | undefined {
    const sealed = answer.sealed;
    if (!sealed) return undefined;
    const worker = sealed.candidates.find((c) => c.id === sealed.result.opener.workerId);
    if (!worker) return "the answer came from a worker the request was not sealed to";
    const billed = totalCostOf(trailer);
    return judgeReceipt(
      trailer.receipt,
      {
        requestId,
        model: app.model,
        maxTokens: app.budget,
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

  private async collectAnswer(res: http.ServerResponse, answer: Answer, app: AppRequest & { endpoint: "chat" | "completions" }, id: string, headers: Record<string, string>): Promise<void> {
    const collector = new AnswerCollector();
    for await (const delta of answer) collector.add(delta);
    const trailer = await this.finish(answer, app, id);
    if (answer.appGone || res.destroyed) return this.account(trailer, false);
    const created = Math.floor(Date.now() / 1000);
    const usage = usageOf(trailer);
    const model = app.model;
    const out =
      app.endpoint === "chat"
        ? { id, object: "chat.completion", created, model, choices: collector.chatChoices(trailer.finishReason), usage, ...serviceTier(app.gen) }
        : { id, object: "text_completion", created, model, choices: collector.textChoices(trailer.finishReason), usage };
    sendJson(res, 200, out, { ...headers, ...timingHeaders(trailer), ...(answer.sealed ? { "x-cocoon-receipt": answer.receiptProblem ? `refused: ${answer.receiptProblem}` : "verified" } : {}) });
    this.account(trailer, !res.destroyed);
  }

  /** A transcription goes back as the engine wrote it: JSON for the JSON formats, text for text, srt and vtt. */
  private async collectTranscription(res: http.ServerResponse, answer: Answer, app: AppRequest & { endpoint: "transcriptions" }, id: string, headers: Record<string, string>): Promise<void> {
    let body = "";
    for await (const delta of answer) body += typeof delta === "string" ? delta : (delta.content ?? "");
    const trailer = await this.finish(answer, app, id);
    if (answer.appGone || res.destroyed) return this.account(trailer, false);
    const json = app.tr.responseFormat.endsWith("json");
    res.writeHead(200, { ...headers, ...timingHeaders(trailer), ...(answer.sealed ? { "x-cocoon-receipt": answer.receiptProblem ? `refused: ${answer.receiptProblem}` : "verified" } : {}), "content-type": json ? "application/json" : "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
    res.end(body);
    this.account(trailer, !res.destroyed);
  }

  private async collectEmbeddings(res: http.ServerResponse, answer: Answer, app: AppRequest & { endpoint: "embeddings" }, id: string, headers: Record<string, string>): Promise<void> {
    const collector = new EmbeddingCollector();
    try {
      for await (const delta of answer) collector.add(delta);
    } catch (err) {
      if (err instanceof StreamError) throw err;
      throw new StreamError("worker_failed", (err as Error).message);
    }
    const trailer = await this.finish(answer, app, id);
    if (answer.appGone || res.destroyed) return this.account(trailer, false);
    let data;
    try {
      data = collector.data(app.emb.encodingFormat, app.emb.input.length);
    } catch (err) {
      throw new StreamError("worker_failed", (err as Error).message);
    }
    const usage = { prompt_tokens: trailer.usage.prompt_tokens, total_tokens: trailer.usage.prompt_tokens, ...costsOf(trailer) };
    sendJson(res, 200, { object: "list", data, model: app.model, usage }, { ...headers, ...timingHeaders(trailer), ...(answer.sealed ? { "x-cocoon-receipt": answer.receiptProblem ? `refused: ${answer.receiptProblem}` : "verified" } : {}) });
    this.account(trailer, !res.destroyed);
  }

  /**
   * Where the cost of a paid answer went: into an answer the app received (delivered), or nowhere because the app had
   * left (it is still paid: the worker produced it). The two add up to what the client paid for answers.
   */
  private account(trailer: InferenceTrailer, delivered: boolean): void {
    const cost = totalCostOf(trailer);
    if (!this.paying || cost === undefined) return;
    const c = delivered ? this.costs.delivered : this.costs.cancelledByApp;
    c.count++;
    c.nano += cost;
  }

  private async streamAnswer(res: http.ServerResponse, answer: Answer, app: AppRequest & { endpoint: "chat" | "completions" }, id: string, headers: Record<string, string>): Promise<void> {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive", ...headers });
    res.flushHeaders();
    const created = Math.floor(Date.now() / 1000);
    const shaper = new ChunkShaper(app.endpoint, { id, created, model: app.model, ...(app.endpoint === "chat" ? serviceTier(app.gen) : {}) }, app.includeUsage);
    // Once the app is gone, the answer is still read to its end (and paid), just not written anywhere.
    const write = async (obj: unknown) => {
      if (answer.appGone || res.destroyed) return;
      if (!res.write(sseData(JSON.stringify(obj)))) await drainOrClose(res);
    };
    try {
      for (const c of shaper.opening()) await write(c);
      for await (const delta of answer) {
        for (const c of shaper.chunks(delta)) await write(c);
      }
      const trailer = await this.finish(answer, app, id);
      for (const c of shaper.closing(trailer.finishReason)) await write(c);
      if (app.includeUsage) {
        const object = app.endpoint === "chat" ? "chat.completion.chunk" : "text_completion";
        await write({ id, object, created, model: app.model, choices: [], usage: usageOf(trailer) });
      }
      this.account(trailer, !answer.appGone && !res.destroyed);
      if (!res.destroyed && !answer.appGone) res.end("data: [DONE]\n\n");
    } catch (err) {
      if (res.destroyed || answer.appGone) throw err;
      // This answer ended without one this client could settle (the proxy may have charged it): reconciliation decides.
      answer.payer?.abandon?.(id);
      // Headers are gone already: report the failure in-band, as OpenAI does, then close the stream.
      const apiErr = toApiError(err);
      this.count(apiErr.status);
      this.stats.failed++;
      this.obs.request({ model: app.model, requestId: id, outcome: "failed", code: apiErr.code ?? String(apiErr.status) });
      res.end(sseData(JSON.stringify(apiErr.toJSON())));
    }
  }

  /** Validates the end of an answer: trailer, and for sealed answers the worker's signed receipt. */
  private async finish(answer: Answer, app: AppRequest, requestId: string): Promise<InferenceTrailer> {
    const trailer = parseMessage(inferenceTrailerSchema, answer.stream.trailer, "proxy trailer");
    if (answer.sealed) {
      answer.receiptProblem = this.checkReceipt(answer, app, trailer, requestId);
      if (answer.receiptProblem) {
        this.stats.receiptsRefused++;
        this.log.warn(`refusing the usage receipt of worker ${answer.sealed.result.opener.workerId} for ${requestId}: ${answer.receiptProblem}; this request will not be paid`);
      } else this.stats.receiptsVerified++;
    }
    await answer.payer?.afterAnswer({
      requestId,
      model: app.model,
      usage: trailer.usage,
      cost: trailer.cost,
      receiptOk: !!answer.sealed && !answer.receiptProblem,
      workerId: trailer.worker,
      ...(answer.sealed ? { coefficient: answer.sealed.candidates.find((c) => c.id === answer.sealed!.result.opener.workerId)?.priceCoefficient ?? COEFFICIENT_BASE } : {}),
    });
    if (answer.appGone) {
      this.stats.cancelledBilled++;
    } else {
      this.stats.completed++;
      this.count(200);
    }
    countUsage(this.stats, trailer.usage);
    this.obs.request({ model: app.model, requestId, outcome: answer.appGone ? "cancelled" : "completed", ttftMs: trailer.timings?.ttftMs, totalMs: trailer.timings?.proxyMs ?? trailer.timings?.totalMs, promptTokens: trailer.usage.prompt_tokens, completionTokens: trailer.usage.completion_tokens, ...evidenceOf(answer, trailer) });
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
    const payers = this.uniquePayers();
    return {
      role: "client",
      version: VERSION,
      id: this.id,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      api: this.http ? `${this.http.url}/v1` : undefined,
      peers: this.proxies.all.map((r) => {
        const l = r.link;
        return {
          role: "proxy",
          address: l.address,
          ...(r.target.contract ? { contract: r.target.contract } : {}),
          connected: l.connected,
          ...(l.peer ? { peer: l.peer.description, insecure: l.peer.insecure } : {}),
          ...(l.connectedSince ? { connectedSince: new Date(l.connectedSince).toISOString() } : {}),
          ...(l.conn?.rttMs !== undefined ? { rttMs: l.conn.rttMs } : {}),
          inFlight: r.inflight,
          served: r.served,
          score: Math.round(this.proxies.score(r)),
          ...(r.coolUntil > Date.now() ? { coolingDownUntil: new Date(r.coolUntil).toISOString() } : {}),
          ...(r.lastRefusal ? { lastRefusal: r.lastRefusal } : {}),
          ...(l.lastError ? { lastError: l.lastError } : {}),
        };
      }),
      ...(this.opts.directory ? { discovery: { ...this.opts.directory.status(), linked: this.proxies.all.length, maxLinks: this.opts.maxProxyLinks ?? DEFAULT_MAX_LINKS } } : {}),
      requests: { total: this.stats.requests, completed: this.stats.completed, failed: this.stats.failed, cancelled: this.stats.cancelled, cancelledBilled: this.stats.cancelledBilled, movedToAnotherProxy: this.stats.proxyRetries, byStatus: this.stats.byStatus },
      tokens: tokensView(this.stats),
      sealing: this.opts.verifyWorkerCert
        ? { enabled: true, receipts: { verified: this.stats.receiptsVerified, refused: this.stats.receiptsRefused }, workersRefused: this.stats.workersRefused, ...(this.lastRefusal ? { lastRefusal: this.lastRefusal } : {}) }
        : { enabled: false, warning: "requests and answers travel in clear through the proxy" },
      errors: this.stats.failed,
      ...(this.paying ? { costs: { delivered: { count: this.costs.delivered.count, nano: this.costs.delivered.nano.toString() }, cancelledByApp: { count: this.costs.cancelledByApp.count, nano: this.costs.cancelledByApp.nano.toString() } } } : {}),
      // One payer: its status as before. Several (a channel per proxy): each under its proxy contract too.
      ...(payers.length === 1 && payers[0]!.payer.status ? { payments: payers[0]!.payer.status() } : {}),
      // Several: the sum over the channels (deposited, spent, signed, …) for dashboards, and each under its proxy.
      ...(payers.length > 1 ? { payments: sumPaymentViews(payers.map(({ payer }) => payer.status?.() ?? {})) } : {}),
      ...(this.opts.payerFor ? { paymentsByProxy: Object.fromEntries(payers.map(({ key, payer }) => [key, payer.status?.() ?? {}])) } : {}),
      ...(this.opts.statusExtra?.() ?? {}),
    };
  }

  /** Each payer once, named by the proxy contract (or address) it pays. */
  private uniquePayers(): Array<{ key: string; payer: Payer }> {
    const out: Array<{ key: string; payer: Payer }> = [];
    if (this.opts.payer && !this.opts.payerFor) return [{ key: "proxy", payer: this.opts.payer }];
    for (const r of this.proxies.all) {
      const p = this.payers.get(r.target.key);
      if (p && !out.some((x) => x.payer === p)) out.push({ key: r.target.contract ?? r.target.key, payer: p });
    }
    return out;
  }

  async stop(): Promise<void> {
    this.obs.close();
    clearInterval(this.tendTimer);
    await this.http?.close();
    // While the proxy links are still up: each payer hands its proxy the newest voucher.
    const payers = new Set<Payer>([...(this.opts.payer ? [this.opts.payer] : []), ...this.payers.values()]);
    await Promise.all([...payers].map((p) => p.close?.()));
    this.proxies.stop();
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

/** One try of a request on one proxy. */
interface Attempt {
  route: ProxyRoute;
  stream?: Stream;
  sealed?: SealedExchange;
  /** The proxy's payer tracks this request (its fate is open until the answer settles or reconciliation). */
  tracked: boolean;
}

/**
 * Whether a failure before the reply head lets the request move to another proxy, and as what refusal: the proxy
 * had no worker, was overloaded or shutting down, was not connected, or its connection died before anything came
 * back. A request the proxy judged bad (or one that needs the app to act: funds, size) fails as it is.
 */
function notStartedRefusal(err: unknown): string | undefined {
  if (err instanceof StreamError && MOVE_TO_ANOTHER_PROXY.has(err.code)) return err.code;
  // insufficient_funds: this proxy's channel runs dry (a top-up may be on its way); another proxy's may pay.
  if (err instanceof ApiError && (err.code === "proxy_unavailable" || err.code === "model_not_found" || err.code === "no_worker" || err.code === "proxy_error" || err.code === "insufficient_funds")) return err.code;
  return undefined;
}

/** Codes of a proxy (or its connection) that say "not now, not here": another proxy may serve the request. */
const MOVE_TO_ANOTHER_PROXY: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["no_worker", "stale_keys", "overloaded", "too_many_streams", "connection_lost", "shutdown", "goaway", "reconnecting", "busy"]);

/** Whether the app closed its HTTP connection before the answer was complete. */
interface AppGone {
  gone: boolean;
  /** Gone because the request ran past the client's timeout (the 504 is already sent). */
  timedOut?: boolean;
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
    /** The payer of the proxy this answer came through. */
    readonly payer?: Payer,
  ) {}

  get appGone(): boolean {
    return this.app.gone;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<AnswerDelta> {
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
      for (const delta of decodeAnswerChunk(data)) {
        if (delta !== "") yield delta;
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

function usageOf(t: InferenceTrailer): Record<string, number> {
  return { ...t.usage, ...costsOf(t) };
}

/** Costs in nanoTON as integers, named as the original Cocoon names them. */
function costsOf(t: InferenceTrailer): Record<string, number> {
  return Object.fromEntries(Object.entries(t.cost ?? {}).map(([k, v]) => [k, Number(v)]));
}

/** OpenAI echoes the service tier that served a chat request; every request here is served on the one tier. */
function serviceTier(gen: GenerationRequest): { service_tier?: string } {
  return gen.body && "service_tier" in gen.body && gen.body.service_tier ? { service_tier: "default" } : {};
}

/** Header name of each timing key (ttftMs -> x-cocoon-ttft-ms), built once per key: every answer carries them. */
const timingHeaderNames = new Map<string, string>();
const TIMING_HEADER_NAMES_LIMIT = 64;

function timingHeaders(t: InferenceTrailer): Record<string, string> {
  const h: Record<string, string> = {};
  if (t.worker) h["x-cocoon-worker"] = t.worker;
  for (const k in t.timings ?? {}) {
    let name = timingHeaderNames.get(k);
    if (name === undefined) {
      name = `x-cocoon-${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}`;
      // The keys come from the worker's trailer: a bounded cache, whatever a worker sends.
      if (timingHeaderNames.size < TIMING_HEADER_NAMES_LIMIT) timingHeaderNames.set(k, name);
    }
    h[name] = String(t.timings![k]);
  }
  return h;
}

/** Maps any failure to the OpenAI error an app should see. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof CocoonError) {
    const status = err.status;
    const type = status === 400 || status === 404 || status === 413 ? "invalid_request_error" : status === 429 ? "rate_limit_error" : status === 402 ? "insufficient_quota" : "api_error";
    // The worker names the parameter it could not honour ("Unsupported parameter: 'logit_bias' ..."): so does the error.
    const param =
      err.code === "unsupported_parameter" ? (/'([^']+)'/.exec(err.message)?.[1] ?? null) : err.code === "context_length_exceeded" ? (/your (messages|prompt)\b/.exec(err.message)?.[1] ?? null) : null;
    return new ApiError(status, err.message, type, err.code, param);
  }
  return new ApiError(500, `Internal error in the Cocoon client: ${(err as Error)?.message ?? String(err)}`, "api_error", "internal_error");
}
