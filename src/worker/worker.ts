// The worker role: dials out to proxies (so it may sit behind NAT), announces its models and capacity,
// validates each request against the field allow-list, runs it on its backend and streams the answer back.
// Each admitted request runs as an InferenceJob (job.ts).
import { sumPaymentViews } from "../payments/summary.js";
import { randomUUID } from "node:crypto";
import { DEFAULT_MAX_STREAMS, type Connection, type Stream } from "../protocol/connection.js";
import type { PeerVerifier, TlsIdentity } from "../protocol/transport.js";
import { PeerLink } from "../protocol/peer-link.js";
import { admitInferenceHead } from "../protocol/admission.js";
import { announceSchema, cancelSchema, OP_INFERENCE, parseMessage, payoutSchema, type Announce, type PayoutMessage, type WorkerPayments } from "../protocol/messages.js";
import type { Backend } from "./backends/backend.js";
import { startStatusServer, type HttpServerHandle } from "../util/http.js";
import { createLogger, type Logger } from "../util/log.js";
import { NodeObservability } from "../observability/node.js";
import { newRequestCounters, tokensView } from "../observability/request-counters.js";
import { VERSION } from "../version.js";
import { ReplayCache } from "../crypto/replay.js";
import { InferenceJob, type JobHost, type SealingKeys, type WorkerRequestStats } from "./job.js";


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


export type { SealingKeys } from "./job.js";

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
  private readonly stats: WorkerRequestStats = { ...newRequestCounters(), rejected: 0, chunks: 0 };
  /** What each InferenceJob (one request) uses of this worker. */
  private readonly jobHost: JobHost;

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
    this.jobHost = {
      workerId: this.id,
      backend: opts.backend,
      keySets: () => this.keySets,
      replayCache: this.replayCache,
      requireSealed: opts.requireSealed ?? false,
      priceCoefficient: opts.priceCoefficient,
      stats: this.stats,
      log: this.log,
      obs: this.obs,
    };
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
        // Room for every request --capacity allows from this proxy, with the ones ending meanwhile: past the stream
        // limit a request is refused as a protocol error, not as "at capacity" (which the proxy waits out).
        maxStreams: Math.max(DEFAULT_MAX_STREAMS, 2 * this.opts.capacity),
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

  /** Admits an inference request (head, capacity, one id at a time per connection), then runs it as an InferenceJob. */
  private async onStream(stream: Stream, conn: Connection, payee: Payee | undefined): Promise<void> {
    if (stream.head?.op !== OP_INFERENCE) {
      stream.reset("bad_request", `unknown operation ${JSON.stringify(stream.head?.op)}; workers serve "${OP_INFERENCE}"`);
      return;
    }
    this.stats.requests++;
    let jobs = this.jobs.get(conn);
    if (!jobs) this.jobs.set(conn, (jobs = new Map()));
    // (A worker that serves only sealed requests refuses the others in InferenceJob.open, once their body is read.)
    const head = admitInferenceHead(stream, {
      inFlight: this.active,
      limit: this.opts.capacity,
      overloaded: (capacity) => `worker ${this.id} is at capacity (${capacity} active requests)`,
      running: jobs,
      duplicate: (id) => `request ${id} is already running on this worker`,
    });
    if (!head) {
      this.stats.rejected++;
      return;
    }
    this.active++;
    // Stops generation: a soft cancel from the proxy, or a hard reset of the stream.
    const stop = new AbortController();
    const hardStop = () => stop.abort();
    stream.signal.addEventListener("abort", hardStop, { once: true });
    jobs.set(head.requestId, stop);
    try {
      await new InferenceJob(this.jobHost, stream, head, payee, stop).run();
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
      tokens: tokensView(this.stats),
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
