// The proxy's view of its workers: what each serves, how busy and how fast it is, and which one gets
// the next request (filter by model, enabled, spare capacity; then least (running + 1) x recent latency).
import type { Connection } from "../protocol/connection.js";
import type { PeerInfo } from "../protocol/transport.js";
import type { CodedProblem } from "../protocol/errors.js";
import type { Announce, ModelInfo, ModelsReply } from "../protocol/messages.js";

/** Latency assumed for a worker that has not served anything yet. */
export const INITIAL_LATENCY_MS = 1000;
/** Weight of the newest sample in the latency moving average. */
export const LATENCY_EWMA_ALPHA = 0.3;

export interface PoolWorker {
  id: string;
  conn: Connection;
  peer: PeerInfo;
  models: ModelInfo[];
  capacity: number;
  enabled: boolean;
  reason?: string;
  backend: string;
  statusUrl?: string;
  active: number;
  latencyMs: number;
  served: number;
  failures: number;
  promptTokens: number;
  completionTokens: number;
  connectedAt: number;
  lastFailure?: string;
  /**
   * Until then the worker counts as full: it refused a request as at capacity although this proxy's own count had
   * room (its capacity is shared with the other proxies it serves, whose requests this proxy does not see).
   */
  fullUntil?: number;
  /** The identity this worker presented before it reconnected (renewal): requests sealed to it may still arrive. */
  previousPeer?: PeerInfo;
  /** Its price coefficient (thousandths of the base price; 1000 when it announced none). */
  priceCoefficient: number;
}

/** Whether a worker's price is within a client's cap (no cap: any price). */
export function withinCap(w: PoolWorker, maxCoefficient: number | undefined): boolean {
  return maxCoefficient === undefined || w.priceCoefficient <= maxCoefficient;
}

/** How long a departed worker's identity is remembered, to accept receipts of requests sealed to it. */
export const PREVIOUS_IDENTITY_MS = 10 * 60 * 1000;

/** Whether a worker can take one more request for a model now (enabled, connected, a free slot, serves it). */
export function canTake(w: PoolWorker, model: string): boolean {
  return w.enabled && !w.conn.closed && w.active < w.capacity && !(w.fullUntil !== undefined && w.fullUntil > Date.now()) && w.models.some((m) => m.id === model);
}

/** How long a worker that refused as full counts as full before this proxy tries it again. */
export const WORKER_FULL_BACKOFF_MS = 100;

export class WorkerPool {
  private readonly workers = new Map<string, PoolWorker>();
  private readonly firstSeen = new Map<string, number>();
  private readonly departed = new Map<string, { peer: PeerInfo; at: number }>();

  /** Adds or updates a worker from its announcement; returns the entry. */
  upsert(conn: Connection, peer: PeerInfo, a: Announce): PoolWorker {
    const existing = this.workers.get(a.workerId);
    if (existing && existing.conn !== conn && !existing.conn.closed) {
      // A second connection claiming the same id: keep the newer one, the old one is likely stale.
      existing.conn.close("replaced", `worker ${a.workerId} connected again`);
    }
    const w: PoolWorker = {
      id: a.workerId,
      conn,
      peer,
      models: a.models,
      capacity: a.capacity,
      enabled: a.enabled,
      reason: a.reason,
      backend: a.backend,
      statusUrl: a.statusUrl,
      priceCoefficient: a.priceCoefficient ?? 1000,
      active: existing?.conn === conn ? existing.active : 0,
      latencyMs: existing?.latencyMs ?? INITIAL_LATENCY_MS,
      served: existing?.served ?? 0,
      failures: existing?.failures ?? 0,
      promptTokens: existing?.promptTokens ?? 0,
      completionTokens: existing?.completionTokens ?? 0,
      connectedAt: existing?.conn === conn ? existing.connectedAt : Date.now(),
      previousPeer: existing?.conn === conn ? existing.previousPeer : this.takeDeparted(a.workerId) ?? (existing && existing.peer !== peer ? existing.peer : undefined),
    };
    this.workers.set(a.workerId, w);
    for (const m of a.models) if (!this.firstSeen.has(m.id)) this.firstSeen.set(m.id, Math.floor(Date.now() / 1000));
    return w;
  }

  private takeDeparted(id: string): PeerInfo | undefined {
    const d = this.departed.get(id);
    this.departed.delete(id);
    return d && Date.now() - d.at < PREVIOUS_IDENTITY_MS ? d.peer : undefined;
  }

  removeConnection(conn: Connection): PoolWorker | undefined {
    for (const [id, w] of this.workers) {
      if (w.conn === conn) {
        this.workers.delete(id);
        this.departed.set(id, { peer: w.peer, at: Date.now() });
        if (this.departed.size > 10_000) this.departed.delete(this.departed.keys().next().value!);
        return w;
      }
    }
    return undefined;
  }

  get size(): number {
    return this.workers.size;
  }

  list(): PoolWorker[] {
    return [...this.workers.values()];
  }

  /**
   * The best worker for a model, skipping those already tried for this request, and, for a sealed request,
   * any worker that is not one of its candidates.
   */
  pick(model: string, exclude: ReadonlySet<string> = new Set(), only?: ReadonlySet<string>, maxCoefficient?: number): PoolWorker | undefined {
    let best: PoolWorker | undefined;
    let bestScore = Infinity;
    for (const w of this.workers.values()) {
      if (exclude.has(w.id) || (only && !only.has(w.id)) || !canTake(w, model) || !withinCap(w, maxCoefficient)) continue;
      const score = (w.active + 1) * w.latencyMs;
      if (score < bestScore) {
        best = w;
        bestScore = score;
      }
    }
    return best;
  }

  /** Why pick() found nothing, as an error code and a sentence for the app. */
  explainNone(model: string, tried: number, maxCoefficient?: number): CodedProblem {
    const all = [...this.workers.values()].filter((w) => w.models.some((m) => m.id === model));
    const serving = all.filter((w) => withinCap(w, maxCoefficient));
    if (all.length > 0 && serving.length === 0) {
      const cheapest = Math.min(...all.map((w) => w.priceCoefficient));
      return { code: "no_worker", message: `No worker serves '${model}' at or under your max_coefficient ${maxCoefficient}; the cheapest asks ${cheapest}. Raise max_coefficient (request field, x-cocoon-max-coefficient header or the client's --max-coefficient).` };
    }
    if (serving.length === 0) {
      const known = this.modelIds();
      return {
        code: known.length ? "model_not_found" : "no_worker",
        message: known.length
          ? `The model '${model}' does not exist on this network. Available: ${known.join(", ")}.`
          : "No worker is connected to the proxy yet; start a worker or wait for one to connect.",
      };
    }
    const enabled = serving.filter((w) => w.enabled && !w.conn.closed);
    if (enabled.length === 0) {
      const why = serving.map((w) => `${w.id}: ${w.reason ?? "disabled"}`).join("; ");
      return { code: "no_worker", message: `Every worker serving '${model}' is disabled (${why}).` };
    }
    if (tried >= enabled.length && tried > 0) {
      return { code: "worker_failed", message: `All ${tried} worker(s) serving '${model}' failed this request.` };
    }
    return { code: "overloaded", message: `All ${enabled.length} worker(s) serving '${model}' are at capacity; retry shortly.` };
  }

  /** Enabled workers for a model, best first (the candidates a client seals to). */
  ranked(model: string, maxCoefficient?: number): PoolWorker[] {
    return [...this.workers.values()]
      .filter((w) => w.enabled && !w.conn.closed && w.models.some((m) => m.id === model) && withinCap(w, maxCoefficient))
      .sort((a, b) => Number(a.active >= a.capacity) - Number(b.active >= b.capacity) || (a.active + 1) * a.latencyMs - (b.active + 1) * b.latencyMs);
  }

  recordSuccess(w: PoolWorker, ms: number, promptTokens: number, completionTokens: number): void {
    w.latencyMs = w.latencyMs * (1 - LATENCY_EWMA_ALPHA) + ms * LATENCY_EWMA_ALPHA;
    w.served++;
    w.promptTokens += promptTokens;
    w.completionTokens += completionTokens;
  }

  recordFailure(w: PoolWorker, reason: string): void {
    w.failures++;
    w.lastFailure = reason;
  }

  modelIds(): string[] {
    const ids = new Set<string>();
    for (const w of this.workers.values()) if (w.enabled) for (const m of w.models) ids.add(m.id);
    return [...ids].sort();
  }

  models(): ModelsReply {
    const byId = new Map<string, ModelsReply["models"][number]>();
    for (const w of this.workers.values()) {
      if (!w.enabled || w.conn.closed) continue;
      for (const m of w.models) {
        const e = byId.get(m.id) ?? { id: m.id, workers: 0, capacity: 0, created: this.firstSeen.get(m.id) ?? 0, ...(m.contextLength ? { contextLength: m.contextLength } : {}) };
        e.workers++;
        e.capacity += w.capacity;
        e.minCoefficient = Math.min(e.minCoefficient ?? w.priceCoefficient, w.priceCoefficient);
        e.maxCoefficient = Math.max(e.maxCoefficient ?? w.priceCoefficient, w.priceCoefficient);
        byId.set(m.id, e);
      }
    }
    return { models: [...byId.values()].sort((a, b) => a.id.localeCompare(b.id)) };
  }
}
