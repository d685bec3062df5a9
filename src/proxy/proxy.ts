// The proxy role: accepts workers (11001) and clients (11002) over TLS 1.3, keeps the worker pool,
// picks a worker per request, relays the streamed answer with backpressure, retries on another worker
// while no byte reached the client, cancels upstream when the client goes away, and meters each request.
// One attempt on one worker (relay, receipt check, billing) is a WorkerRelay (relay.ts); this file keeps the
// listeners, admission and the retry loop.
import type { Connection, Stream } from "../protocol/connection.js";
import type { CodedProblem } from "../protocol/errors.js";
import { MAX_SEALED_REQUEST } from "../protocol/limits.js";
import { admitInferenceHead } from "../protocol/admission.js";
import { listen, type Listener, type PeerInfo, type PeerVerifier, type TlsIdentity } from "../protocol/transport.js";
import {
  announceSchema,
  cancelSchema,
  OP_INFERENCE,
  OP_MODELS,
  OP_WORKERS,
  OP_PAYMENTS,
  parseMessage,
  paymentsRequestSchema,
  workersRequestSchema,
  type InferenceHead,
} from "../protocol/messages.js";
import { canTake, WorkerPool } from "./pool.js";
import { DEFAULT_MAX_COEFFICIENT } from "../payments/pricing.js";
import { DEFAULT_QUEUE_TIMEOUT_MS, QueueFull, SlotQueue, QUEUE_RETRY_AFTER_S, type QueueOptions } from "./queue.js";
import { workerIdMismatch } from "../tee/claims.js";
import { sessionBinding } from "../protocol/session-binding.js";
import { RetryableFailure, WorkerRelay, type ProxyRequestStats, type RelayHost, type RelayState } from "./relay.js";
import { CountingMeter, MeterRefusal, type ClientContext, type Meter } from "./meter.js";
import { startStatusServer, type HttpServerHandle } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { NodeObservability } from "../observability/node.js";
import { newRequestCounters, tokensView } from "../observability/request-counters.js";
import { VERSION } from "../version.js";

export const DEFAULT_WORKER_PORT = 11001;
export const DEFAULT_CLIENT_PORT = 11002;
export const DEFAULT_PROXY_STATUS_PORT = 11000;
/** How many different workers one request may be tried on. */
export const DEFAULT_MAX_ATTEMPTS = 3;
/** Candidates offered to a client for sealing: enough for a retry or two, few enough to keep sealing cheap. */
export const DEFAULT_MAX_CANDIDATES = 3;
/** Requests one client connection may have in flight (running or waiting for a worker) before it gets 429. */
export const DEFAULT_MAX_IN_FLIGHT_PER_CLIENT = 2_048;

export interface ProxyOptions {
  host?: string;
  workerPort?: number;
  clientPort?: number;
  statusPort?: number;
  identity: TlsIdentity;
  /** Checks a worker's certificate (attestation). Mutual TLS: workers must present one. */
  verifyWorker: PeerVerifier;
  /** Checks a client's certificate, if clients present one. */
  verifyClient: PeerVerifier;
  requireClientCert?: boolean;
  /** Sees every decrypted byte of every connection (audits). */
  tap?: (direction: "in" | "out", data: Buffer) => void;
  /** Refuse requests that are not sealed to attested workers (production). */
  requireSealed?: boolean;
  /** How many candidates the proxy offers a client to seal to. */
  maxCandidates?: number;
  /** The wait queue for requests that find every worker of their model busy (limits, deadline). */
  queue?: QueueOptions;
  /** See DEFAULT_MAX_IN_FLIGHT_PER_CLIENT. */
  maxInFlightPerClient?: number;
  /** Most request streams one client connection may have open at once (default DEFAULT_MAX_STREAMS, 1,024). */
  maxStreamsPerClientConnection?: number;
  meter?: Meter;
  maxAttempts?: number;
  proxyId?: string;
  log?: Logger;
  statusExtra?: () => Record<string, unknown>;
}

interface ClientState {
  conn: Connection;
  peer: PeerInfo;
  id: string;
  /** What the meter binds this client's payment channel to (see ClientContext.session). */
  ctx: ClientContext;
  since: number;
  requests: number;
  /** Requests of this client being relayed, by request id (a soft cancel names one). */
  relays: Map<string, RelayState>;
}

export class ProxyNode {
  readonly pool = new WorkerPool();
  private readonly queue: SlotQueue;
  /** Set by drain(): new requests get this refusal instead of a worker. */
  private draining?: CodedProblem;
  readonly startedAt = Date.now();
  readonly id: string;
  private readonly log: Logger;
  /** Metrics, live dashboard and operator controls on the status port. */
  readonly obs: NodeObservability;
  private readonly meter: Meter;
  private workerListener?: Listener;
  private clientListener?: Listener;
  private status?: HttpServerHandle;
  private readonly clients = new Set<ClientState>();
  private readonly stats: ProxyRequestStats & { refusedPeers: number } = { ...newRequestCounters(), retried: 0, rejected: 0, refusedPeers: 0, receiptsVerified: 0, receiptsRefused: 0 };
  /** What each WorkerRelay (one attempt on one worker) uses of this proxy. */
  private readonly relayHost: RelayHost;
  private lastRefusal: string | undefined;

  constructor(private readonly opts: ProxyOptions) {
    this.id = opts.proxyId ?? "proxy";
    this.queue = new SlotQueue(opts.queue, () =>
      this.pool.list().map((w) => ({ id: w.id, hasSlotFor: (m: string) => canTake(w, m) })),
    );
    this.log = opts.log ?? createLogger("proxy");
    this.obs = new NodeObservability("proxy", this.log);
    this.meter = opts.meter ?? new CountingMeter();
    this.relayHost = {
      pool: this.pool,
      meter: this.meter,
      stats: this.stats,
      log: this.log,
      obs: this.obs,
      kickQueue: () => this.queue.kick(),
      relayedChunk: (chunk, index) => this.relayedChunk(chunk, index),
      relayedTrailer: (trailer) => this.relayedTrailer(trailer),
    };
    this.meter.attach?.({
      sendToWorker: (workerId, message) => {
        const w = this.pool.list().find((x) => x.id === workerId);
        if (!w || w.conn.closed) return false;
        w.conn.sendControl(message);
        return true;
      },
    });
  }

  get workerPort(): number {
    return this.workerListener!.port;
  }
  get clientPort(): number {
    return this.clientListener!.port;
  }
  get statusUrl(): string | undefined {
    return this.status ? `${this.status.url}/status` : undefined;
  }

  async start(): Promise<void> {
    const host = this.opts.host ?? "127.0.0.1";
    // The listener rate-limits these calls; `count` says how many refusals one call stands for.
    const onRejected = (who: string) => (reason: string, remote: string, count = 1) => {
      this.stats.refusedPeers += count;
      this.lastRefusal = `${who} ${remote}: ${reason}`;
      this.log.warn(`refused ${who} ${remote}: ${reason}`);
    };
    this.workerListener = await listen({
      host,
      port: this.opts.workerPort ?? DEFAULT_WORKER_PORT,
      identity: this.opts.identity,
      requestClientCert: true,
      verifyPeer: this.opts.verifyWorker,
      connection: { role: "proxy", nodeId: this.id, software: `cocoon-ts/${VERSION}`, tap: this.opts.tap },
      onConnection: ({ conn, peer }) => this.onWorker(conn, peer),
      onRejected: onRejected("worker"),
    });
    this.clientListener = await listen({
      host,
      port: this.opts.clientPort ?? DEFAULT_CLIENT_PORT,
      identity: this.opts.identity,
      requestClientCert: this.opts.requireClientCert ?? false,
      verifyPeer: this.opts.verifyClient,
      connection: { role: "proxy", nodeId: this.id, software: `cocoon-ts/${VERSION}`, tap: this.opts.tap, maxStreams: this.opts.maxStreamsPerClientConnection },
      onConnection: ({ conn, peer }) => this.onClient(conn, peer),
      onRejected: onRejected("client"),
    });
    if (this.opts.statusPort !== undefined) {
      this.status = await startStatusServer(host, this.opts.statusPort, () => this.statusJson(), this.obs);
    }
  }

  private onWorker(conn: Connection, peer: PeerInfo): void {
    const remote = conn.peerHello?.node ?? "unknown";
    if (conn.peerHello?.role !== "worker") {
      conn.close("wrong_role", `this port is for workers; a ${conn.peerHello?.role} connected`);
      return;
    }
    conn.on("control", (msg) => {
      if (msg.type !== "announce") return;
      try {
        const a = parseMessage(announceSchema, msg, "worker announcement");
        const idProblem = workerIdMismatch(peer, a.workerId);
        if (idProblem) throw new Error(idProblem);
        const attested = peer.models;
        const unattested = attested ? a.models.filter((m) => !attested.includes(m.id)) : [];
        if (unattested.length) {
          throw new Error(`announces model(s) ${unattested.map((m) => m.id).join(", ")} but its attestation binds only ${attested!.join(", ")}`);
        }
        const known = this.pool.list().some((w) => w.conn === conn);
        const w = this.pool.upsert(conn, peer, a);
        this.queue.kick(); // a new worker, or more capacity: requests waiting for a slot may run
        this.meter.onWorkerAnnounce?.(w.id, a.payments);
        const what = `${w.id} (${peer.description}): ${a.models.map((m) => m.id).join(", ") || "no models"}, capacity ${a.capacity}`;
        if (!known) this.log.info(`worker joined: ${what}`);
        if (!a.enabled) this.log.warn(`worker ${w.id} is disabled: ${a.reason ?? "no reason given"}`);
      } catch (err) {
        this.log.warn(`worker ${remote} sent a bad announcement: ${(err as Error).message}`);
        conn.close("bad_request", (err as Error).message);
      }
    });
    conn.on("stream", (s) => s.reset("bad_request", "workers do not open streams to the proxy"));
    conn.on("close", (err) => {
      const w = this.pool.removeConnection(conn);
      if (w) this.log.warn(`worker left: ${w.id} (${err?.message ?? "closed"})`);
    });
  }

  private onClient(conn: Connection, peer: PeerInfo): void {
    const id = conn.peerHello?.node ?? "client";
    const state: ClientState = { conn, peer, id, ctx: { clientId: id, session: sessionBinding(conn), insecure: peer.insecure }, since: Date.now(), requests: 0, relays: new Map() };
    this.clients.add(state);
    this.log.info(`client connected: ${state.id}`);
    conn.on("stream", (s) => void this.onClientStream(state, s).finally(() => this.obs.streamEnded(s)));
    conn.on("control", (msg) => {
      if (msg.type !== "cancel") return;
      try {
        this.softCancel(state, parseMessage(cancelSchema, msg, "cancel message").requestId);
      } catch (err) {
        this.log.warn(`client ${state.id} sent a bad control message: ${(err as Error).message}`);
      }
    });
    conn.on("close", () => {
      this.clients.delete(state);
      this.meter.onClientGone?.(state.ctx);
      this.log.info(`client disconnected: ${state.id}`);
    });
  }

  private async onClientStream(client: ClientState, stream: Stream): Promise<void> {
    const op = stream.head?.op;
    if (op === OP_MODELS) {
      stream.reply(this.pool.models());
      stream.end();
      return;
    }
    if (op === OP_PAYMENTS) {
      try {
        if (!this.meter.handleClientRequest) throw new Error("this proxy has no payments configured");
        const body = parseMessage(paymentsRequestSchema, JSON.parse((await stream.readAll(64 * 1024)).toString("utf8")), "payments request");
        stream.reply(await this.meter.handleClientRequest(client.ctx, body));
        stream.end();
      } catch (err) {
        stream.reset(err instanceof MeterRefusal ? err.code : "bad_request", (err as Error).message);
      }
      return;
    }
    if (op === OP_WORKERS) {
      try {
        const { model, maxCoefficient } = parseMessage(workersRequestSchema, stream.head, "workers request");
        const workers = this.pool
          .ranked(model, maxCoefficient)
          .filter((w) => w.peer.certDer)
          .slice(0, this.opts.maxCandidates ?? DEFAULT_MAX_CANDIDATES)
          .map((w) => ({ id: w.id, cert: w.peer.certDer!.toString("base64"), priceCoefficient: w.priceCoefficient }));
        stream.reply({ workers });
        stream.end();
      } catch (err) {
        stream.reset("bad_request", (err as Error).message);
      }
      return;
    }
    if (op !== OP_INFERENCE) {
      stream.reset("bad_request", `unknown operation ${JSON.stringify(op)}`);
      return;
    }
    client.requests++;
    this.stats.requests++;
    const head = admitInferenceHead(stream, {
      ...(this.opts.requireSealed ? { sealedOnly: "this proxy only relays requests sealed to attested workers (production policy); use a current cocoon client with sealing on" } : {}),
      inFlight: client.relays.size,
      limit: this.opts.maxInFlightPerClient ?? DEFAULT_MAX_IN_FLIGHT_PER_CLIENT,
      overloaded: (limit) => `this client already has ${limit} requests in flight at this proxy (its limit per client); retry when some ended (retry-after 1)`,
      running: client.relays,
      duplicate: (id) => `request id ${id} is already in flight on this connection; use a fresh id per request`,
    });
    if (!head) {
      this.stats.rejected++;
      return;
    }
    // Registered at once: a cancel may follow the request's head immediately, while admission still runs.
    const relay: RelayState = { cancelled: false };
    client.relays.set(head.requestId, relay);
    const ctx = client.ctx;
    try {
      await this.meter.admit(ctx, { ...head, maxCoefficient: this.reserveCoefficient(head) });
    } catch (err) {
      client.relays.delete(head.requestId);
      this.stats.rejected++;
      stream.reset(err instanceof MeterRefusal ? err.code : "bad_request", (err as Error).message);
      return;
    }
    let settled = false;
    try {
      const body = await stream.readAll(MAX_SEALED_REQUEST);
      settled = await this.relay(ctx, head, body, stream, relay);
    } catch (err) {
      if (!stream.error) stream.reset("bad_request", (err as Error).message);
    } finally {
      client.relays.delete(head.requestId);
      if (!settled) this.meter.release(ctx, head);
    }
  }

  /**
   * The client's app went away: stop generating, but let the worker end the answer with its final chunk and signed
   * receipt, so that client and proxy settle the same request at the same cost (nothing stuck after a late cancel).
   */
  private softCancel(client: ClientState, requestId: string): void {
    const relay = client.relays.get(requestId);
    if (!relay || relay.cancelled) return;
    relay.cancelled = true;
    relay.stop?.abort();
    const w = relay.worker;
    if (w && !w.conn.closed) w.conn.sendControl({ type: "cancel", requestId });
  }

  /**
   * Runs the request on one worker after another (each attempt a WorkerRelay) until one answers, waiting in the queue
   * while every worker that could take it is busy; true when usage was settled.
   */
  private async relay(ctx: ClientContext, head: InferenceHead, body: Buffer, client: Stream, state: RelayState): Promise<boolean> {
    const tried = new Set<string>();
    const maxAttempts = this.opts.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const only = head.sealed ? new Set(head.candidates ?? []) : undefined;
    // The price market: only workers at or under the client's cap (the original's default when it names none).
    const cap = head.maxCoefficient ?? DEFAULT_MAX_COEFFICIENT;
    let staleKeys = false;
    let busySince: number | undefined;
    for (;;) {
      if (client.signal.aborted || state.cancelled) {
        this.stats.cancelled++;
        if (!client.signal.aborted) client.reset("cancelled", "the client cancelled the request before a worker took it");
        return false;
      }
      const worker = !this.draining && tried.size < maxAttempts ? this.pool.pick(head.model, tried, only, cap) : undefined;
      if (!worker) {
        const why = this.whyNoWorker(head.model, tried.size, only, staleKeys, cap);
        if (why.code === "overloaded" && tried.size < maxAttempts) {
          if (await this.waitForSlot(ctx, head, only, client, state)) continue;
          return false;
        }
        this.stats.failed++;
        client.reset(why.code, why.message);
        return false;
      }
      tried.add(worker.id);
      if (tried.size > 1) this.stats.retried++;
      let failure: RetryableFailure;
      try {
        return await new WorkerRelay(this.relayHost, worker, ctx, head, body, client, state).run();
      } catch (err) {
        if (!(err instanceof RetryableFailure)) throw err;
        failure = err;
      }
      if (failure.busy) {
        // Not an attempt: the queue holds the request until a slot frees, within one queue deadline in all.
        tried.delete(worker.id);
        busySince ??= Date.now();
        if (Date.now() - busySince > this.queueTimeoutMs) {
          this.stats.failed++;
          client.reset("overloaded", `every worker serving '${head.model}' stayed at capacity; retry shortly (retry-after ${QUEUE_RETRY_AFTER_S})`);
          return false;
        }
        continue;
      }
      staleKeys ||= failure.staleKeys;
      this.log.warn(`request ${head.requestId}: worker ${worker.id} failed before answering (${failure.message}); trying another`);
    }
  }

  /**
   * Every worker that could take the request is busy: wait for a slot (bounded, fair between clients, with a
   * deadline). True to try again (a slot, or a cancel the retry loop's first check ends); false when answered here.
   */
  private async waitForSlot(ctx: ClientContext, head: InferenceHead, only: ReadonlySet<string> | undefined, client: Stream, state: RelayState): Promise<boolean> {
    if (!state.stop) {
      // Ends the wait on a soft cancel (softCancel aborts it) or when the client's stream goes away.
      const stop = (state.stop = new AbortController());
      if (state.cancelled || client.signal.aborted) stop.abort();
      else client.signal.addEventListener("abort", () => stop.abort(), { once: true });
    }
    let outcome;
    try {
      outcome = await this.queue.wait(head.model, ctx.session, only, state.stop.signal);
    } catch (err) {
      if (!(err instanceof QueueFull)) throw err;
      this.stats.failed++;
      client.reset("overloaded", `${err.message} (retry-after ${QUEUE_RETRY_AFTER_S})`);
      return false;
    }
    if (outcome === "slot" || outcome === "cancelled") return true;
    this.stats.failed++;
    client.reset("overloaded", `every worker serving '${head.model}' stayed busy for the ${Math.round(this.queueTimeoutMs / 1000)} s this request may wait; retry shortly (retry-after ${QUEUE_RETRY_AFTER_S})`);
    return false;
  }

  /** How long a request may wait for a slot in all. */
  private get queueTimeoutMs(): number {
    return this.opts.queue?.timeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS;
  }

  /**
   * The price coefficient admission reserves at: the dearest worker this request may go to (serving its model, at or
   * under the client's cap), or the base price when none is known yet.
   */
  private reserveCoefficient(head: InferenceHead): number {
    const cap = head.maxCoefficient ?? DEFAULT_MAX_COEFFICIENT;
    let k = 0;
    for (const w of this.pool.list()) if (w.priceCoefficient <= cap && w.models.some((m) => m.id === head.model)) k = Math.max(k, w.priceCoefficient);
    return k || 1000;
  }

  /** Why no worker takes a request now, as the error code and sentence the app gets. */
  private whyNoWorker(model: string, tried: number, only: ReadonlySet<string> | undefined, staleKeys: boolean, cap?: number): CodedProblem {
    if (this.draining) return this.draining;
    if (staleKeys) return { code: "no_worker", message: `the request was sealed to keys its worker(s) no longer hold (restarted since the candidates were fetched); fetch the candidates again and retry` };
    if (only && tried === 0 && this.pool.pick(model, undefined, undefined, cap) !== undefined) {
      return { code: "no_worker", message: `none of the ${only.size} worker(s) this request was sealed to is available now; fetch the candidates again and retry` };
    }
    return this.pool.explainNone(model, tried, cap);
  }

  /** Operator hold: with a message, new requests are refused with it (running ones go on); undefined serves again. */
  hold(message: string | undefined): void {
    this.draining = message ? { code: "no_worker", message } : undefined;
  }

  get held(): boolean {
    return this.draining !== undefined;
  }

  /** Serves a renewed certificate to new handshakes (identity rotation). */
  setIdentity(identity: TlsIdentity): void {
    this.workerListener?.setIdentity(identity);
    this.clientListener?.setIdentity(identity);
  }

  /**
   * What goes to the client for each relayed answer chunk and for the trailer: exactly what the worker sent. Only
   * tests override these (test/helpers/network.ts TamperingProxy), to play a malicious proxy and prove that clients
   * detect tampered answers and receipts; no option or flag reaches them.
   */
  protected relayedChunk(chunk: Buffer, _index: number): Buffer {
    return chunk;
  }
  protected relayedTrailer(trailer: Record<string, unknown>): Record<string, unknown> {
    return trailer;
  }

  statusJson(): Record<string, unknown> {
    return {
      role: "proxy",
      version: VERSION,
      id: this.id,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      ports: { workers: this.workerListener?.port, clients: this.clientListener?.port },
      // Connections, handshakes in progress, the attestation verification queue, buffered bytes, refusals by kind.
      listeners: { workers: this.workerListener?.stats(), clients: this.clientListener?.stats() },
      models: this.pool.models().models,
      peers: {
        workers: this.pool.list().map((w) => ({
          id: w.id,
          peer: w.peer.description,
          insecure: w.peer.insecure,
          backend: w.backend,
          models: w.models.map((m) => m.id),
          enabled: w.enabled,
          ...(w.reason ? { reason: w.reason } : {}),
          capacity: w.capacity,
          active: w.active,
          latencyMs: Math.round(w.latencyMs),
          served: w.served,
          failures: w.failures,
          ...(w.lastFailure ? { lastFailure: w.lastFailure } : {}),
          tokens: { prompt: w.promptTokens, completion: w.completionTokens },
          ...(w.statusUrl ? { statusUrl: w.statusUrl } : {}),
          connectedSince: new Date(w.connectedAt).toISOString(),
        })),
        clients: [...this.clients].map((c) => ({ id: c.id, peer: c.peer.description, requests: c.requests, connectedSince: new Date(c.since).toISOString() })),
      },
      requests: {
        total: this.stats.requests,
        completed: this.stats.completed,
        failed: this.stats.failed,
        cancelled: this.stats.cancelled,
        retried: this.stats.retried,
        rejected: this.stats.rejected,
      },
      receipts: { verified: this.stats.receiptsVerified, refused: this.stats.receiptsRefused },
      queue: this.queue.status(),
      tokens: tokensView(this.stats),
      errors: { failed: this.stats.failed, refusedPeers: this.stats.refusedPeers, ...(this.lastRefusal ? { lastRefusal: this.lastRefusal } : {}) },
      ...(this.meter.status ? { payments: this.meter.status() } : {}),
      ...(this.opts.statusExtra?.() ?? {}),
    };
  }

  async stop(): Promise<void> {
    for (const w of this.pool.list()) w.conn.close("shutdown", "proxy stopping");
    for (const c of this.clients) c.conn.close("shutdown", "proxy stopping");
    await Promise.all([this.workerListener?.close(), this.clientListener?.close(), this.status?.close()]);
    await this.meter.close?.();
  }

  /**
   * Graceful shutdown, first half (SIGTERM): new inference requests are refused with the retryable "no_worker"
   * (saying the proxy is shutting down), running relays go on until they ended or `timeoutMs` passed; stop() does
   * the rest. The refusal sits where a worker is picked, so a request is refused before it reaches any worker.
   */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = { code: "no_worker", message: `The proxy${this.id === "proxy" ? "" : ` ${this.id}`} is shutting down and takes no new requests; retry in a moment (through another proxy if you have one).` };
    const running = () => this.pool.list().reduce((n, w) => n + w.active, 0);
    const deadline = Date.now() + timeoutMs;
    if (running() > 0) this.log.info(`draining: waiting for ${running()} running request(s), at most ${Math.round(timeoutMs / 1000)} s`);
    while (running() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (running() > 0) this.log.warn(`drain timeout: ${running()} running request(s) will be cut off`);
    else this.log.info("drained: no request is running");
  }
}
