// Prometheus metrics of one node (`GET /metrics` on its status port). One Registry per node instance, never
// prom-client's global default: tests run several nodes in one process. Requests, tokens and latencies are counted
// where they happen (observeRequest, one call per finished request); everything the node already counts for
// /status (peers, capacity, queue, money, settlement) is read from its status object at scrape time instead of
// being counted twice.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../version.js";

export type NodeRole = "client" | "proxy" | "worker";

/** How a request ended, seen from one role. */
export type RequestOutcome = "completed" | "failed" | "cancelled" | "rejected";

/** One finished request, as a role saw it. */
export interface RequestObservation {
  model: string;
  outcome: RequestOutcome;
  /** The error code (protocol code, or HTTP status at the client) when it did not complete. */
  code?: string;
  /** Time to the first answer byte and to the end, in milliseconds, when known. */
  ttftMs?: number;
  totalMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  /** The request's id, the same in every role's logs and in the app's x-request-id header. */
  requestId?: string;
  /** The worker that served it, what it cost (nanoTON) and the serving worker's attestation, when the role knows. */
  worker?: string;
  costNano?: string;
  evidence?: string;
}

/** A status object as the roles build it (JSON). */
export type StatusObject = Record<string, unknown>;

/** Reads a number at a dotted path of a status object; bigint-as-string money included. undefined when absent. */
export function numberAt(o: unknown, path: string): number | undefined {
  let v: unknown = o;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^-?[0-9]+(\.[0-9]+)?$/.test(v)) return Number(v);
  return undefined;
}

function arrayAt(o: unknown, path: string): Record<string, unknown>[] {
  let v: unknown = o;
  for (const k of path.split(".")) {
    if (v === null || typeof v !== "object") return [];
    v = (v as Record<string, unknown>)[k];
  }
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === "object") as Record<string, unknown>[]) : [];
}

/** Money each role shows, by kind, at its path in /status (nanoTON, cumulative from the node's ledger). */
export const MONEY_PATHS: Record<NodeRole, Record<string, string>> = {
  client: { deposited: "payments.deposited", spent: "payments.spent", signed: "payments.signed", redeemed: "payments.redeemed", available: "payments.available" },
  worker: { earned: "payments.earned", paid: "payments.paid", unclaimed: "payments.unclaimed", wallet: "payments.walletBalance" },
  proxy: { charged: "payments.charged", signed: "payments.signed", redeemed: "payments.redeemed", workers_earned: "payments.workersEarned", fees: "payments.fees", written_off: "payments.writtenOff", contract_balance: "payments.contract.balance", paid_out: "payments.contract.paidOut" },
};

/** The money line each role's dashboard charts over time. */
export const HEADLINE_MONEY: Record<NodeRole, string> = { client: "spent", worker: "earned", proxy: "fees" };

const SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export class NodeMetrics {
  readonly registry = new Registry();
  /** Latency sums for windowed averages (the history samples them). */
  readonly latency = { totalMsSum: 0, totalCount: 0, ttftMsSum: 0, ttftCount: 0 };
  private status: () => StatusObject = () => ({});
  /** The status object of the scrape in progress: read once, used by every collect(). */
  private snapshot: StatusObject = {};
  private readonly requests: Counter<"model" | "outcome" | "code">;
  private readonly tokens: Counter<"model" | "direction">;
  private readonly ttft: Histogram<"model">;
  private readonly duration: Histogram<"model">;

  constructor(readonly role: NodeRole) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ role });
    this.requests = new Counter({ name: "cocoon_requests_total", help: "Inference requests that ended, by model, outcome and error code (empty when it completed).", labelNames: ["model", "outcome", "code"], registers });
    this.tokens = new Counter({ name: "cocoon_tokens_total", help: "Tokens of finished requests, by model and direction (prompt = in, completion = out).", labelNames: ["model", "direction"], registers });
    this.ttft = new Histogram({ name: "cocoon_time_to_first_token_seconds", help: "Time from the request to its first answer byte.", labelNames: ["model"], buckets: SECONDS_BUCKETS, registers });
    this.duration = new Histogram({ name: "cocoon_request_duration_seconds", help: "Time from the request to the end of its answer.", labelNames: ["model"], buckets: SECONDS_BUCKETS, registers });
    const snap = () => this.snapshot;
    const gauge = (name: string, help: string, labelNames: string[], collect: (g: Gauge<string>) => void) =>
      new Gauge({ name, help, labelNames, registers, collect(this: Gauge<string>) { this.reset(); collect(this); } });
    /** A count the node keeps itself (cumulative, only grows): exported as a counter set at scrape time. */
    const counter = (name: string, help: string, labelNames: string[], collect: (g: { set(labels: Record<string, string>, v: number): void }) => void) =>
      new Counter({
        name, help, labelNames, registers,
        collect(this: Counter<string>) {
          this.reset();
          collect({ set: (labels, v) => v > 0 && this.inc(labels, v) });
        },
      });

    gauge("cocoon_build_info", "Always 1; the version is a label.", ["version"], (g) => g.set({ version: VERSION }, 1));
    gauge("cocoon_uptime_seconds", "Seconds since this node started.", [], (g) => g.set(numberAt(snap(), "uptimeSeconds") ?? 0));
    gauge("cocoon_active_streams", "Requests running now on this node.", [], (g) => g.set(activeOf(role, snap())));
    gauge("cocoon_peers_connected", "Connected peers by role.", ["peer_role"], (g) => {
      const s = snap();
      if (role === "proxy") {
        g.set({ peer_role: "worker" }, arrayAt(s, "peers.workers").length);
        g.set({ peer_role: "client" }, arrayAt(s, "peers.clients").length);
      } else g.set({ peer_role: "proxy" }, arrayAt(s, "peers").filter((p) => p.connected === true).length);
    });
    gauge("cocoon_payments_nanoton", "Money in nanoTON by kind, cumulative from this node's ledger (client: deposited/spent/redeemed; worker: earned/paid; proxy: charged/redeemed/fees).", ["kind"], (g) => {
      for (const [kind, path] of Object.entries(MONEY_PATHS[role])) {
        const v = numberAt(snap(), path);
        if (v !== undefined) g.set({ kind }, v);
      }
    });
    if (role === "worker") {
      gauge("cocoon_worker_capacity", "Requests this worker runs at once.", [], (g) => g.set(numberAt(snap(), "capacity") ?? 0));
      gauge("cocoon_worker_load_ratio", "Running requests over capacity (0..1).", [], (g) => {
        const cap = numberAt(snap(), "capacity") ?? 0;
        g.set(cap > 0 ? (numberAt(snap(), "activeRequests") ?? 0) / cap : 0);
      });
      counter("cocoon_settlement_total", "Settlement operations so far, by kind.", ["kind"], (g) => {
        const claims = numberAt(snap(), "payments.claims");
        if (claims !== undefined) g.set({ kind: "payout_claim" }, claims);
        const refused = numberAt(snap(), "payments.refusedVouchers");
        if (refused !== undefined) g.set({ kind: "voucher_refused" }, refused);
      });
    }
    if (role === "proxy") {
      const workers = () => arrayAt(snap(), "peers.workers");
      gauge("cocoon_worker_capacity", "Capacity each connected worker announced.", ["worker"], (g) => workers().forEach((w) => g.set({ worker: String(w.id) }, Number(w.capacity) || 0)));
      gauge("cocoon_worker_active", "Requests running on each worker now.", ["worker"], (g) => workers().forEach((w) => g.set({ worker: String(w.id) }, Number(w.active) || 0)));
      gauge("cocoon_worker_enabled", "1 when the worker takes requests, 0 when it announced itself disabled or draining.", ["worker"], (g) => workers().forEach((w) => g.set({ worker: String(w.id) }, w.enabled === true ? 1 : 0)));
      gauge("cocoon_worker_latency_seconds", "Each worker's recent mean request latency, as the proxy measures it.", ["worker"], (g) => workers().forEach((w) => g.set({ worker: String(w.id) }, (Number(w.latencyMs) || 0) / 1000)));
      gauge("cocoon_queue_depth", "Requests waiting for a free worker slot, by model.", ["model"], (g) => {
        const waiting = (snap().queue as { waiting?: Record<string, number> } | undefined)?.waiting ?? {};
        for (const [model, n] of Object.entries(waiting)) g.set({ model }, Number(n) || 0);
      });
      counter("cocoon_attestation_refusals_total", "Peers refused at the proxy's listeners, by listener and rule (tls, peer_refused = attestation or policy, pow, busy, …).", ["listener", "rule"], (g) => {
        for (const listener of ["workers", "clients"]) {
          const refused = (snap().listeners as Record<string, { refused?: Record<string, number> }> | undefined)?.[listener]?.refused ?? {};
          for (const [rule, n] of Object.entries(refused)) g.set({ listener, rule }, Number(n) || 0);
        }
      });
      counter("cocoon_attestation_refusals_by_rule_total", "Peers refused at the proxy's listeners by their attestation or policy, by the rule that refused them (policy.measurement, ratls.reportdata, evidence.format, …).", ["listener", "rule"], (g) => {
        for (const listener of ["workers", "clients"]) {
          const byRule = (snap().listeners as Record<string, { refusedByRule?: Record<string, number> }> | undefined)?.[listener]?.refusedByRule ?? {};
          for (const [rule, n] of Object.entries(byRule)) g.set({ listener, rule }, Number(n) || 0);
        }
      });
      counter("cocoon_settlement_total", "Settlement operations so far, by kind.", ["kind"], (g) => {
        const s = snap();
        const put = (kind: string, path: string) => {
          const v = numberAt(s, path);
          if (v !== undefined) g.set({ kind }, v);
        };
        put("redeem_batch", "payments.transactions.redeemBatches");
        put("payout_voucher", "payments.transactions.payoutVouchers");
        put("client_voucher_verified", "payments.vouchersVerified");
      });
    }
    gauge("cocoon_attestation_peers", "Connected peers by attestation platform and verdict (secure, or insecure for the sim stand-in).", ["peer_role", "platform", "verdict"], (g) => {
      const counts = new Map<string, number>();
      for (const p of peersOf(role, snap())) {
        const key = JSON.stringify([p.role, p.platform, p.insecure ? "insecure" : "secure"]);
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      for (const [key, n] of counts) {
        const [peer_role, platform, verdict] = JSON.parse(key) as string[];
        g.set({ peer_role: peer_role!, platform: platform!, verdict: verdict! }, n);
      }
    });
    if (role === "client") {
      counter("cocoon_attestation_refusals_total", "Candidate workers whose attestation this client refused to seal to.", ["listener", "rule"], (g) => {
        const n = numberAt(snap(), "sealing.workersRefused");
        if (n !== undefined) g.set({ listener: "sealing_candidates", rule: "worker_refused" }, n);
      });
    }
    counter("cocoon_receipts_total", "Worker-signed usage receipts checked, by verdict.", ["verdict"], (g) => {
      const s = snap();
      const base = role === "client" ? "sealing.receipts" : "receipts";
      for (const verdict of ["verified", "refused"]) {
        const v = numberAt(s, `${base}.${verdict}`);
        if (v !== undefined) g.set({ verdict }, v);
      }
    });
  }

  /** Where scrapes read the node's own counters. */
  attachStatus(status: () => StatusObject): void {
    this.status = status;
  }

  /** Counts one finished request (one call per request, where the role ends it). */
  observeRequest(o: RequestObservation): void {
    const model = o.model || "unknown";
    this.requests.inc({ model, outcome: o.outcome, code: o.outcome === "completed" ? "" : (o.code ?? "unknown") });
    if (o.promptTokens) this.tokens.inc({ model, direction: "prompt" }, o.promptTokens);
    if (o.completionTokens) this.tokens.inc({ model, direction: "completion" }, o.completionTokens);
    if (o.outcome !== "completed") return;
    if (o.ttftMs !== undefined && o.ttftMs >= 0) {
      this.ttft.observe({ model }, o.ttftMs / 1000);
      this.latency.ttftMsSum += o.ttftMs;
      this.latency.ttftCount++;
    }
    if (o.totalMs !== undefined && o.totalMs >= 0) {
      this.duration.observe({ model }, o.totalMs / 1000);
      this.latency.totalMsSum += o.totalMs;
      this.latency.totalCount++;
    }
  }

  /** The Prometheus text exposition (format 0.0.4). */
  async text(): Promise<string> {
    this.snapshot = this.status();
    try {
      return await this.registry.metrics();
    } finally {
      this.snapshot = {};
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** Requests running now, from a role's status object. */
export function activeOf(role: NodeRole, s: StatusObject): number {
  if (role === "worker") return numberAt(s, "activeRequests") ?? 0;
  if (role === "proxy") return arrayAt(s, "peers.workers").reduce((n, w) => n + (Number(w.active) || 0), 0);
  const r = (k: string) => numberAt(s, `requests.${k}`) ?? 0;
  return Math.max(0, r("total") - r("completed") - r("failed") - r("cancelled") - r("cancelledBilled"));
}

/** The peers a role's status lists, with their attestation platform. */
export function peersOf(role: NodeRole, s: StatusObject): { role: string; platform: string; insecure: boolean }[] {
  const platformOf = (desc: unknown) => /on ([\w-]+)/.exec(String(desc ?? ""))?.[1] ?? "unknown";
  if (role === "proxy") {
    return [
      ...arrayAt(s, "peers.workers").map((w) => ({ role: "worker", platform: platformOf(w.peer), insecure: w.insecure === true })),
      ...arrayAt(s, "peers.clients").map((c) => ({ role: "client", platform: platformOf(c.peer), insecure: /INSECURE/.test(String(c.peer ?? "")) })),
    ];
  }
  return arrayAt(s, "peers").filter((p) => p.connected === true && p.peer).map((p) => ({ role: String(p.role ?? "proxy"), platform: platformOf(p.peer), insecure: p.insecure === true }));
}
