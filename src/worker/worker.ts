// The worker role: dials out to proxies (so it may sit behind NAT), announces its models and capacity,
// validates each request against the field allow-list, runs it on its backend and streams the answer back.
import { sumPaymentViews } from "../payments/summary.js";
import { MAX_SEALED_REQUEST } from "../protocol/limits.js";
import { randomUUID } from "node:crypto";
import type { Connection, Stream } from "../protocol/connection.js";
import type { PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { PeerLink } from "../protocol/peer-link.js";
import { announceSchema, cancelSchema, inferenceHeadSchema, OP_INFERENCE, parseMessage, payoutSchema, type Announce, type PayoutMessage, type WorkerPayments, type WorkerReply } from "../protocol/messages.js";
import { encodeAnswerChunk, type AnswerDelta } from "../protocol/answer-chunk.js";
import { ApiError, parseEmbeddingRequest, parseGenerationRequest, parseTranscriptionRequest, type EmbeddingRequest, type GenerationEndpoint } from "../protocol/openai.js";
import { boundaryFromBody, parseMultipart } from "../util/multipart.js";
import { BackendError, type Backend, type GenerationResult } from "./backends/backend.js";
import { startStatusServer, type HttpServerHandle } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { NodeObservability } from "../observability/node.js";
import { VERSION } from "../version.js";
import { buildReceipt, openRequest, signReceipt, type ResponseSealer } from "../crypto/index.js";
import { ReplayCache } from "../crypto/replay.js";
import type { KeyObject } from "node:crypto";


/** A proxy a worker dials; `key` names it (its contract address when discovered on the root). */
export interface WorkerProxyTarget {
  host: string;
  port: number;
  key?: string;
  /** Its proxy contract (friendly form), when discovered. */
  contract?: string;
}

export interface WorkerOptions {
  /** Proxies to dial at start; `setProxies` changes the list later (discovery). */
  proxies: WorkerProxyTarget[];
  /** Verifier for one proxy (e.g. bound to its registered contract); default `verifyProxy` for all. */
  verifyProxyFor?: (target: WorkerProxyTarget) => PeerVerifier;
  /** Payment hook per proxy (each proxy pays from its own contract); default `payee` for all. */
  payeeFor?: (target: WorkerProxyTarget) => Payee | undefined;
  backend: Backend;
  capacity: number;
  /** Our certificate, or a function giving the current one (it changes when the identity rotates). */
  identity: TlsIdentity | (() => TlsIdentity);
  verifyProxy: PeerVerifier;
  workerId?: string;
  statusHost?: string;
  /** 0 picks a free port; undefined serves no status page. */
  statusPort?: number;
  log?: Logger;
  /** Keys bound in this worker's attestation: open sealed requests, sign usage receipts. */
  sealing?: SealingKeys;
  /** Refuse requests that are not sealed (production). */
  requireSealed?: boolean;
  /** Payment hook: what to announce (payout address), payout vouchers from proxies, the price of usage. */
  payee?: Payee;
  /** Extra fields for /status (attestation, payments). */
  statusExtra?: () => Record<string, unknown>;
  /** Price coefficient it asks (thousandths of the root's base price; default 1000 = base price). */
  priceCoefficient?: number;
}


/** Keys bound in one attested identity: open sealed requests, sign usage receipts. */
export interface SealingKeys {
  hpkePublicKey: Uint8Array;
  hpkePrivateKey: Uint8Array;
  receiptKey: KeyObject;
}

/** How long a worker waits for its running requests before it reconnects with a renewed identity. */
export const ROTATION_DRAIN_MS = 60_000;

/** The worker's side of payments (src/payments implements it). */
export interface Payee {
  /** Payment details for the announcement, e.g. the payout address. */
  announce(): WorkerPayments | undefined;
  /** A proxy's payout voucher (control message `payout`, already checked against its schema). */
  onPayout(proxy: string, message: PayoutMessage): void;
  /** What this usage costs the client, in nanoTON, at this price coefficient: written into the signed receipt. */
  costOf?(model: string, promptTokens: number, completionTokens: number, coefficient?: number): bigint;
  status?(): Record<string, unknown>;
  close?(): Promise<void>;
}

export class WorkerNode {
  readonly id: string;
  readonly startedAt = Date.now();
  private readonly log: Logger;
  /** One link per proxy, by target key: all share this worker's one capacity. */
  private readonly linked = new Map<string, { link: PeerLink; target: WorkerProxyTarget; payee: Payee | undefined }>();
  private started = false;
  /** Every payee used so far (a proxy that left may still owe vouchers being claimed): closed at stop. */
  private readonly payeesUsed = new Set<Payee>();
  /** Metrics, live dashboard and operator controls on the status port. */
  readonly obs: NodeObservability;
  private active = 0;
  private stopped = false;
  private status?: HttpServerHandle;
  /** chunks: answer chunks sent (with delta batching, a fast engine needs far fewer than one per token). */
  private readonly stats = { requests: 0, completed: 0, failed: 0, cancelled: 0, rejected: 0, promptTokens: 0, completionTokens: 0, chunks: 0 };

  /** Current keys first, then the previous identity's: clients may have sealed to it just before a renewal. */
  private keySets: SealingKeys[] = [];
  private draining: string | undefined;
  /** An operator's hold (admin drain or disable, src/observability/controls.ts): announced disabled, with this reason. */
  private held: string | undefined;
  /** Sealed requests opened, per HPKE key while it is held: refuses replays (src/crypto/replay.ts). */
  private readonly replayCache = new ReplayCache();
  /** Running requests per proxy connection, by request id: a proxy's soft cancel names one. */
  private readonly jobs = new Map<Connection, Map<string, AbortController>>();

  constructor(private readonly opts: WorkerOptions) {
    this.id = opts.workerId ?? `worker-${randomUUID().slice(0, 8)}`;
    if (opts.sealing) this.keySets = [opts.sealing];
    this.log = opts.log ?? createLogger(this.id);
    this.obs = new NodeObservability("worker", this.log);
  }

  get statusUrl(): string | undefined {
    return this.status ? `${this.status.url}/status` : undefined;
  }

  async start(): Promise<void> {
    this.opts.backend.subscribe?.(() => void this.reannounce());
    if (this.opts.statusPort !== undefined) {
      this.status = await startStatusServer(this.opts.statusHost ?? "127.0.0.1", this.opts.statusPort, () => this.statusJson(), this.obs);
    }
    this.started = true;
    this.setProxies(this.opts.proxies);
  }

  /** The proxies this worker links to now (host:port). */
  get proxyAddresses(): string[] {
    return this.links.map((l) => l.address);
  }

  private get links(): PeerLink[] {
    return [...this.linked.values()].map((e) => e.link);
  }

  /** Links to these proxies (and only these): new ones are dialled, those gone are let go (their running requests are cut). */
  setProxies(targets: WorkerProxyTarget[]): void {
    const keyOf = (t: WorkerProxyTarget) => t.key ?? `${t.host}:${t.port}`;
    const wanted = new Map(targets.map((t) => [keyOf(t), t]));
    for (const [key, e] of this.linked) {
      const t = wanted.get(key);
      if (t && t.host === e.target.host && t.port === e.target.port) continue;
      this.linked.delete(key);
      e.link.stop();
      this.log.info(`left proxy ${e.target.contract ?? e.link.address}: ${t ? "its endpoints changed" : "no longer registered"}`);
    }
    for (const [key, t] of wanted) {
      if (this.linked.has(key)) continue;
      const payee = this.opts.payeeFor ? this.opts.payeeFor(t) : this.opts.payee;
      if (payee) this.payeesUsed.add(payee);
      const link: PeerLink = new PeerLink({
        host: t.host,
        port: t.port,
        role: "worker",
        nodeId: this.id,
        identity: this.opts.identity,
        verifyPeer: this.opts.verifyProxyFor ? this.opts.verifyProxyFor(t) : this.opts.verifyProxy,
        log: this.log,
        onConnected: async (conn) => {
          conn.on("stream", (s) => void this.onStream(s, conn, payee).finally(() => this.obs.streamEnded(s)));
          conn.on("control", (m) => {
            if (m.type === "cancel") this.onCancel(conn, m);
            else if (m.type === "payout") this.onPayout(link.address, m, payee);
            else this.log.debug(`proxy ${link.address} sent a control message of unknown type ${JSON.stringify(String(m.type).slice(0, 40))}; ignored`);
          });
          conn.once("close", () => this.jobs.delete(conn));
          conn.sendControl(await this.announcement(payee));
        },
      });
      this.linked.set(key, { link, target: t, payee });
      if (this.started) link.start();
    }
  }

  /** Re-sends the announcement to every proxy (after the backend's models or health changed). */
  async reannounce(): Promise<void> {
    for (const e of this.linked.values()) {
      const l = e.link;
      if (l.conn && !l.conn.closed) l.conn.sendControl(await this.announcement(e.payee));
    }
  }

  /** The payees used, each once. */
  private payees(): Payee[] {
    return [...new Set([...(this.opts.payee ? [this.opts.payee] : []), ...this.payeesUsed])];
  }

  async announcement(payee: Payee | undefined = this.opts.payee): Promise<Announce> {
    const health = await this.opts.backend.health();
    const msg: Announce = {
      type: "announce",
      workerId: this.id,
      models: this.opts.backend.models(),
      capacity: this.opts.capacity,
      enabled: health.ok && !this.stopped && !this.draining && !this.held,
      backend: this.opts.backend.kind,
      ...(this.draining || this.held ? { reason: this.draining ?? this.held } : health.reason ? { reason: health.reason } : {}),
      ...(this.statusUrl ? { statusUrl: this.statusUrl } : {}),
    };
    const payments = payee?.announce();
    if (payments) msg.payments = payments;
    if (this.opts.priceCoefficient !== undefined) msg.priceCoefficient = this.opts.priceCoefficient;
    return parseMessage(announceSchema, msg, "announcement");
  }

  private onPayout(proxy: string, msg: Record<string, unknown>, payee: Payee | undefined): void {
    const p = payoutSchema.safeParse(msg);
    if (!p.success) return this.log.warn(`proxy ${proxy} sent a malformed payout message; ignored`);
    payee?.onPayout(proxy, p.data);
  }

  /** Operator hold: with a reason, proxies send nothing new (running requests finish); undefined takes requests again. */
  async hold(reason: string | undefined): Promise<void> {
    this.held = reason;
    await this.reannounce();
  }

  /** Money per proxy this worker serves (each pays it through its own contract), and their sum for dashboards. */
  private paymentsByProxy(): { payments: Record<string, unknown>; paymentsByProxy: Record<string, Record<string, unknown>> } {
    const byProxy = Object.fromEntries([...this.linked.values()].flatMap((e) => (e.payee?.status ? [[e.target.contract ?? e.link.address, e.payee.status()]] : [])));
    return { payments: sumPaymentViews(Object.values(byProxy)), paymentsByProxy: byProxy };
  }

  /** Soft cancel: stop generating; the answer still ends with its final chunk and a receipt for what was generated. */
  private onCancel(conn: Connection, msg: Record<string, unknown>): void {
    try {
      const { requestId } = parseMessage(cancelSchema, msg, "cancel message");
      this.jobs.get(conn)?.get(requestId)?.abort();
    } catch (err) {
      this.log.warn(`proxy sent a bad cancel message: ${(err as Error).message}`);
    }
  }

  private async onStream(stream: Stream, conn: Connection, payee: Payee | undefined): Promise<void> {
    if (stream.head?.op !== OP_INFERENCE) {
      stream.reset("bad_request", `unknown operation ${JSON.stringify(stream.head?.op)}; workers serve "${OP_INFERENCE}"`);
      return;
    }
    this.stats.requests++;
    let head;
    try {
      head = parseMessage(inferenceHeadSchema, stream.head, "inference head");
    } catch (err) {
      this.stats.rejected++;
      stream.reset("bad_request", (err as Error).message);
      return;
    }
    if (this.active >= this.opts.capacity) {
      this.stats.rejected++;
      stream.reset("overloaded", `worker ${this.id} is at capacity (${this.opts.capacity} active requests)`);
      return;
    }
    let jobs = this.jobs.get(conn);
    if (!jobs) this.jobs.set(conn, (jobs = new Map()));
    if (jobs.has(head.requestId)) {
      this.stats.rejected++;
      stream.reset("bad_request", `request ${head.requestId} is already running on this worker`);
      return;
    }
    this.active++;
    const started = Date.now();
    let firstByteAt = 0;
    // Stops generation: a soft cancel from the proxy, or a hard reset of the stream.
    const stop = new AbortController();
    const hardStop = () => stop.abort();
    stream.signal.addEventListener("abort", hardStop, { once: true });
    jobs.set(head.requestId, stop);
    try {
      let raw: Uint8Array = await stream.readAll(MAX_SEALED_REQUEST);
      let responder: ResponseSealer | undefined;
      let receiptKey: KeyObject | undefined;
      if (head.sealed) {
        if (this.keySets.length === 0) throw new ApiError(400, `worker ${this.id} has no attested sealing key and cannot open sealed requests`, "invalid_request_error");
        let lastError: unknown;
        let opened: Awaited<ReturnType<typeof openRequest>> | undefined;
        let openedWith: SealingKeys | undefined;
        for (const keys of this.keySets) {
          try {
            opened = await openRequest(raw, { workerId: this.id, hpkePrivateKey: keys.hpkePrivateKey, hpkePublicKey: keys.hpkePublicKey }, { requestId: head.requestId, model: head.model });
            openedWith = keys;
            break;
          } catch (err) {
            lastError = err;
          }
        }
        if (!opened || !openedWith) {
          // Sealed to keys this worker does not hold (it restarted with new ones, or the envelope was altered): the
          // proxy tries the other candidates, and the client seals again to a fresh list (code stale_keys).
          this.stats.failed++;
          stream.reset("stale_keys", `worker ${this.id} cannot open the sealed request: ${(lastError as Error).message}`);
          return;
        }
        // One answer per sealed request and key, while the key is held (src/crypto/replay.ts): a replaying proxy is refused.
        const seen = this.replayCache.admit(openedWith.hpkePublicKey, opened.replayId, this.keySets.map((k) => k.hpkePublicKey));
        if (seen !== "fresh") {
          this.stats.rejected++;
          if (seen === "replayed") {
            stream.reset("replayed", `worker ${this.id} already opened this sealed request (requestId ${JSON.stringify(head.requestId)}); a replayed request is refused, never answered twice`);
          } else {
            stream.reset("stale_keys", `worker ${this.id} has opened ${this.replayCache.maxEntriesPerKey} requests under this HPKE key (its replay-cache limit) and takes new ones only under a renewed key; fetch the candidates again`);
          }
          return;
        }
        raw = opened.body;
        responder = opened.responder;
        receiptKey = openedWith.receiptKey;
      } else if (this.opts.requireSealed) {
        throw new ApiError(400, `worker ${this.id} only serves sealed requests (production policy)`, "invalid_request_error");
      }
      const req = head.endpoint === "transcriptions" ? parseTranscriptionForm(raw) : parseBody(head.endpoint, raw);
      if (req.model !== head.model) throw new ApiError(400, `body names model ${req.model} but the head says ${head.model}`, "invalid_request_error");
      const served = this.opts.backend.models();
      if (served.length === 0) {
        // The engine's last health probe failed (it lists nothing until it answers again): not the request's fault,
        // so a retryable code — the proxy tries another worker — rather than model_not_found, which it would not.
        const health = await this.opts.backend.health();
        this.stats.rejected++;
        stream.reset("backend_failed", `worker ${this.id}'s engine is not answering now${health.reason ? ` (${health.reason})` : ""}; try another worker`);
        return;
      }
      if (!served.some((m) => m.id === req.model)) {
        stream.reset("model_not_found", `worker ${this.id} does not serve ${req.model}`);
        this.stats.rejected++;
        return;
      }
      // Every choice may run to max_tokens: the proxy admitted (and reserved payment for) their sum.
      const budget = "maxTokens" in req ? req.maxTokens * (req.n ?? 1) : 1;
      const backend = this.opts.backend;
      if ("maxTokens" in req && budget > head.maxTokens) throw new ApiError(400, `max_tokens ${budget} (for all choices) exceeds the ${head.maxTokens} the proxy admitted`, "invalid_request_error");
      // The reply goes out with the first chunk (one TLS write, not two), and a request whose engine fails before
      // that can still be retried elsewhere by the proxy, which retries only before a reply. Stream.reply sends once.
      const reply = () => stream.reply({ ok: true, worker: this.id } satisfies WorkerReply);
      // Cancelled before it started: nothing is generated, and the answer still ends properly (zero usage).
      const gen = stop.signal.aborted
        ? notStarted()
        : "maxTokens" in req
          ? backend.generate(req, stop.signal)
          : "input" in req
            ? embedAnswer(backend, req, stop.signal, this.id)
            : transcribeAnswer(backend, raw, req.boundary, head.maxTokens, stop.signal, this.id);
      let result;
      try {
        for (;;) {
          const step = await gen.next();
          if (step.done) {
            result = step.value;
            break;
          }
          if (!firstByteAt) firstByteAt = Date.now();
          // One chunk per batch of deltas (those the engine produced together); the client splits them again.
          const deltas = encodeAnswerChunk(step.value);
          this.stats.chunks++;
          reply();
          await stream.write(responder ? responder.sealChunk(deltas, false) : deltas);
        }
      } finally {
        // Runs the backend's cleanup (frees the engine sequence) even when the stream failed mid-way.
        await gen.return(undefined as never).catch(() => {});
      }
      if (stream.signal.aborted) {
        // Hard stop: the stream is gone, so is any receipt.
        this.stats.cancelled++;
        return;
      }
      if (result.finishReason === "cancelled") this.stats.cancelled++;
      else this.stats.completed++;
      this.stats.promptTokens += result.usage.prompt_tokens;
      this.stats.completionTokens += result.usage.completion_tokens;
      let receipt: unknown;
      if (responder) {
        // The final sealed chunk tells the client the answer is complete (truncation is detectable).
        this.stats.chunks++;
        reply();
        await stream.write(responder.sealChunk(encodeAnswerChunk([], result.finishReason), true));
        const r = buildReceipt(responder, {
          requestId: head.requestId,
          model: head.model,
          promptTokens: result.usage.prompt_tokens,
          completionTokens: result.usage.completion_tokens,
          costNano: payee?.costOf?.(head.model, result.usage.prompt_tokens, result.usage.completion_tokens, this.opts.priceCoefficient) ?? 0n,
        });
        receipt = signReceipt(r, receiptKey!);
      }
      reply();
      this.obs.request({ model: head.model, requestId: head.requestId, outcome: result.finishReason === "cancelled" ? "cancelled" : "completed", ttftMs: (firstByteAt || Date.now()) - started, totalMs: Date.now() - started, promptTokens: result.usage.prompt_tokens, completionTokens: result.usage.completion_tokens });
      stream.end({
        ...(receipt ? { receipt } : {}),
        usage: result.usage,
        finishReason: result.finishReason,
        usageSource: result.usageSource,
        timings: { ttftMs: firstByteAt ? firstByteAt - started : Date.now() - started, totalMs: Date.now() - started },
      });
    } catch (err) {
      if (stream.signal.aborted) {
        this.stats.cancelled++;
        return;
      }
      this.stats.failed++;
      if (err instanceof ApiError) stream.reset(err.code === "unsupported_parameter" || err.code === "context_length_exceeded" ? err.code : "bad_request", err.message);
      else if (err instanceof BackendError) stream.reset(err.code, err.message);
      else {
        this.log.error(`request ${head.requestId} failed: ${(err as Error).stack ?? err}`);
        stream.reset("backend_failed", `worker ${this.id} failed: ${(err as Error).message}`);
      }
    } finally {
      this.active--;
      stream.signal.removeEventListener("abort", hardStop);
      if (jobs.get(head.requestId) === stop) jobs.delete(head.requestId);
    }
  }

  /**
   * Switches to a renewed identity: new sealing keys at once (the previous ones still open what clients sealed a
   * moment ago), then a graceful reconnect so proxies see the new certificate: announce disabled, let running
   * requests finish (up to ROTATION_DRAIN_MS), reconnect, announce enabled.
   */
  async rotateIdentity(keys: SealingKeys, drainMs = ROTATION_DRAIN_MS): Promise<void> {
    this.keySets = [keys, ...this.keySets].slice(0, 2);
    this.draining = "renewing its attested identity";
    await this.reannounce();
    const deadline = Date.now() + drainMs;
    while (this.active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.draining = undefined;
    for (const l of this.links) l.reconnect("renewing the attested identity");
  }

  statusJson(): Record<string, unknown> {
    return {
      role: "worker",
      version: VERSION,
      id: this.id,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      backend: this.opts.backend.kind,
      models: this.opts.backend.models(),
      capacity: this.opts.capacity,
      priceCoefficient: this.opts.priceCoefficient ?? 1000,
      activeRequests: this.active,
      // The engine's own slot use (embedded: llama.cpp sequences really held), next to the worker's request count.
      ...(this.opts.backend.slots ? { engineSlots: this.opts.backend.slots() } : {}),
      peers: [...this.linked.values()].map(({ link: l, target }) => ({
        role: "proxy",
        address: l.address,
        ...(target.contract ? { contract: target.contract } : {}),
        connected: l.connected,
        ...(l.peer ? { peer: l.peer.description, insecure: l.peer.insecure } : {}),
        ...(l.connected && l.connectedSince ? { connectedSince: new Date(l.connectedSince).toISOString() } : {}),
        ...(l.conn?.rttMs !== undefined ? { rttMs: l.conn.rttMs } : {}),
        ...(l.lastError ? { lastError: l.lastError } : {}),
      })),
      requests: { ...this.stats },
      tokens: { prompt: this.stats.promptTokens, completion: this.stats.completionTokens },
      errors: this.stats.failed,
      ...(this.opts.payee?.status && !this.opts.payeeFor ? { payments: this.opts.payee.status() } : {}),
      ...(this.opts.payeeFor ? this.paymentsByProxy() : {}),
      ...(this.opts.statusExtra?.() ?? {}),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const l of this.links) l.stop();
    await this.status?.close();
    await this.opts.backend.close();
    for (const p of this.payees()) await p.close?.();
  }

  /**
   * Graceful shutdown, first half (SIGTERM): announces itself disabled ("draining") so proxies send nothing new,
   * then waits until the running requests ended or `timeoutMs` passed. stop() does the rest.
   */
  async drain(timeoutMs: number): Promise<void> {
    const reason = "shutting down: finishing its running requests, taking no new ones";
    this.draining = reason;
    await this.reannounce().catch((err: Error) => this.log.warn(`could not announce the drain to the proxies: ${err.message}`));
    const deadline = Date.now() + timeoutMs;
    if (this.active > 0) this.log.info(`draining: waiting for ${this.active} running request(s), at most ${Math.round(timeoutMs / 1000)} s`);
    while (this.active > 0 && Date.now() < deadline) {
      // An identity renewal ends its own drain by clearing the reason: stay disabled until the stop.
      if (this.draining !== reason) {
        this.draining = reason;
        await this.reannounce().catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (this.active > 0) this.log.warn(`drain timeout: ${this.active} running request(s) will be cut off`);
    else this.log.info("drained: no request is running");
  }
}

/** A JSON request body (chat, completions, embeddings), validated against the endpoint's allow-list. */
function parseBody(endpoint: GenerationEndpoint | "embeddings", raw: Uint8Array) {
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"));
  } catch {
    throw new ApiError(400, "request body is not valid JSON", "invalid_request_error");
  }
  return endpoint === "embeddings" ? parseEmbeddingRequest(body) : parseGenerationRequest(endpoint, body);
}

/** A transcription form (multipart), validated as the client did; its boundary is on its first line. */
function parseTranscriptionForm(raw: Uint8Array): { model: string; boundary: string } {
  const boundary = boundaryFromBody(raw);
  if (!boundary) throw new ApiError(400, "the transcription request is not a multipart form", "invalid_request_error");
  let parts;
  try {
    parts = parseMultipart(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), boundary);
  } catch (err) {
    throw new ApiError(400, `the transcription form is malformed: ${(err as Error).message}`, "invalid_request_error");
  }
  return { model: parseTranscriptionRequest(parts).model, boundary };
}

/** A transcription answer: the engine's body as text deltas, in chunks that each fit one frame. */
async function* transcribeAnswer(backend: Backend, form: Uint8Array, boundary: string, maxTokens: number, signal: AbortSignal, workerId: string): AsyncGenerator<AnswerDelta[], GenerationResult> {
  if (!backend.transcribe) throw new BackendError("unsupported_parameter", `Unsupported parameter: 'file': worker ${workerId}'s ${backend.kind} engine serves no audio transcriptions; use a model served by --backend openai in front of an engine that has /v1/audio/transcriptions.`);
  const r = await backend.transcribe(form, boundary, maxTokens, signal);
  // 8 Ki characters is at most 48 KiB of JSON even if every one needs escaping: one frame.
  for (let i = 0; i < r.body.length; i += 8192) yield [r.body.slice(i, i + 8192)];
  return { usage: r.usage, finishReason: "stop", usageSource: r.usageSource };
}

/** Most bytes of embedding data in one answer chunk: a chunk must travel as one frame (protocol/connection.ts). */
const EMBEDDING_CHUNK_BYTES = 48 * 1024;

/**
 * An embeddings answer as chunks of deltas, one per input vector, in order: base64 of little-endian float32 on the
 * wire (a quarter of the size of JSON numbers), turned back into numbers by the client when the app wants floats.
 */
async function* embedAnswer(backend: Backend, req: EmbeddingRequest, signal: AbortSignal, workerId: string): AsyncGenerator<AnswerDelta[], GenerationResult> {
  if (!backend.embed) throw new BackendError("unsupported_parameter", `worker ${workerId} serves no embeddings for ${req.model} (its ${backend.kind} engine has none); use a model served by an embeddings engine.`);
  const r = await backend.embed(req, signal);
  let batch: AnswerDelta[] = [];
  let bytes = 0;
  for (const [index, vector] of r.embeddings.entries()) {
    const embedding = typeof vector === "string" ? vector : float32Base64(vector);
    if (embedding.length > EMBEDDING_CHUNK_BYTES) throw new BackendError("backend_failed", `an embedding of ${vector.length} dimensions is larger than one answer chunk carries; ask for fewer 'dimensions'.`);
    if (bytes + embedding.length > EMBEDDING_CHUNK_BYTES) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push({ index, embedding });
    bytes += embedding.length + 32;
  }
  if (batch.length) yield batch;
  return { usage: r.usage, finishReason: "stop", usageSource: r.usageSource };
}

export function float32Base64(vector: readonly number[]): string {
  const f = new Float32Array(vector);
  return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("base64");
}

/** The "generation" of a request cancelled before it reached the backend: no text, zero usage. */
// eslint-disable-next-line require-yield
async function* notStarted(): AsyncGenerator<AnswerDelta[], GenerationResult> {
  return { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }, finishReason: "cancelled", usageSource: "engine" };
}
