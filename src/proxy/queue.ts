// The proxy's wait queue: a request that finds every worker of its model busy waits for a free slot instead of
// failing. Bounded (per model and per client), fair between clients (round robin: one client's burst cannot starve
// another's single request), with a deadline. Only a full queue or an expired deadline gives the app a 429.

/** Defaults: how long a request may wait for a slot, and how many may wait. */
export const DEFAULT_QUEUE_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_QUEUED_PER_MODEL = 4_096;
export const DEFAULT_MAX_QUEUED_PER_CLIENT = 1_024;
/** What a refused app is told to wait before retrying (Retry-After), in seconds. */
export const QUEUE_RETRY_AFTER_S = 1;

export interface QueueOptions {
  timeoutMs?: number;
  maxPerModel?: number;
  maxPerClient?: number;
}

/** A worker as the queue sees it: which models it serves and whether it has a free slot. */
export interface SlotSource {
  id: string;
  hasSlotFor(model: string): boolean;
}

interface Waiter {
  client: string;
  /** Sealed requests can run only on their candidates. */
  only?: ReadonlySet<string>;
  at: number;
  wake: (outcome: "slot" | "timeout" | "cancelled") => void;
}

export class QueueFull extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueueFull";
  }
}

/** Waits of one model, per client in round-robin order (a Map keeps insertion order: served clients move to the end). */
type ModelQueue = Map<string, Waiter[]>;

export class SlotQueue {
  private readonly byModel = new Map<string, ModelQueue>();
  private readonly perClient = new Map<string, number>();
  private readonly stats = { queued: 0, served: 0, timedOut: 0, refusedFull: 0, cancelled: 0, waitMsTotal: 0, waitMsMax: 0 };
  private readonly timeoutMs: number;
  private readonly maxPerModel: number;
  private readonly maxPerClient: number;

  constructor(o: QueueOptions = {}, private readonly workers: () => Iterable<SlotSource>) {
    this.timeoutMs = o.timeoutMs ?? DEFAULT_QUEUE_TIMEOUT_MS;
    this.maxPerModel = o.maxPerModel ?? DEFAULT_MAX_QUEUED_PER_MODEL;
    this.maxPerClient = o.maxPerClient ?? DEFAULT_MAX_QUEUED_PER_CLIENT;
  }

  /** Requests waiting for a model now. */
  depth(model: string): number {
    let n = 0;
    for (const ws of this.byModel.get(model)?.values() ?? []) n += ws.length;
    return n;
  }

  /**
   * Waits until a worker of `model` may have a slot for this request ("slot": try to pick one now), the deadline
   * passes ("timeout") or `signal` aborts ("cancelled"). Throws QueueFull at once when the queue is full.
   */
  wait(model: string, client: string, only: ReadonlySet<string> | undefined, signal: AbortSignal): Promise<"slot" | "timeout" | "cancelled"> {
    const depth = this.depth(model);
    const mine = this.perClient.get(client) ?? 0;
    if (depth >= this.maxPerModel || mine >= this.maxPerClient) {
      this.stats.refusedFull++;
      throw new QueueFull(
        depth >= this.maxPerModel
          ? `every worker serving '${model}' is busy and ${depth} requests already wait for one (the limit); retry in ${QUEUE_RETRY_AFTER_S} s`
          : `this client already has ${mine} requests waiting for a worker (the limit per client); retry in ${QUEUE_RETRY_AFTER_S} s`,
      );
    }
    return new Promise((resolve) => {
      let q = this.byModel.get(model);
      if (!q) this.byModel.set(model, (q = new Map()));
      let list = q.get(client);
      if (!list) q.set(client, (list = []));
      const waiter: Waiter = {
        client,
        ...(only ? { only } : {}),
        at: Date.now(),
        wake: (outcome) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.remove(model, waiter);
          const waited = Date.now() - waiter.at;
          this.stats.waitMsTotal += waited;
          if (waited > this.stats.waitMsMax) this.stats.waitMsMax = waited;
          if (outcome === "slot") this.stats.served++;
          else if (outcome === "timeout") this.stats.timedOut++;
          else this.stats.cancelled++;
          resolve(outcome);
        },
      };
      const timer = setTimeout(() => waiter.wake("timeout"), this.timeoutMs);
      const onAbort = () => waiter.wake("cancelled");
      signal.addEventListener("abort", onAbort, { once: true });
      list.push(waiter);
      this.perClient.set(client, mine + 1);
      this.stats.queued++;
      // A slot may be free already (the one that was busy just ended): hand it out now.
      queueMicrotask(() => this.kick(model));
    });
  }

  /** A slot may have freed up (a request ended, a worker joined or changed): wake waiters that can use one. */
  kick(model?: string): void {
    for (const m of model ? [model] : [...this.byModel.keys()]) {
      const q = this.byModel.get(m);
      if (!q || q.size === 0) continue;
      // Free slots per worker of this model; each woken waiter is counted against one, so no slot is promised twice.
      const free = new Map<string, number>();
      for (const w of this.workers()) if (w.hasSlotFor(m)) free.set(w.id, 1);
      if (free.size === 0) continue;
      let progress = true;
      while (progress && free.size > 0 && q.size > 0) {
        progress = false;
        for (const [client, list] of [...q]) {
          const i = list.findIndex((w) => !w.only || [...free.keys()].some((id) => w.only!.has(id)));
          if (i < 0) continue;
          const waiter = list[i]!;
          const slot = [...free.keys()].find((id) => !waiter.only || waiter.only.has(id))!;
          free.delete(slot);
          waiter.wake("slot"); // removes it from the queue
          // Round robin: this client goes to the back of the line.
          const rest = q.get(client);
          if (rest) {
            q.delete(client);
            q.set(client, rest);
          }
          progress = true;
          break;
        }
      }
    }
  }

  private remove(model: string, waiter: Waiter): void {
    const q = this.byModel.get(model);
    const list = q?.get(waiter.client);
    if (!q || !list) return;
    const i = list.indexOf(waiter);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) q.delete(waiter.client);
    if (q.size === 0) this.byModel.delete(model);
    const n = (this.perClient.get(waiter.client) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(waiter.client);
    else this.perClient.set(waiter.client, n);
  }

  status(): Record<string, unknown> {
    const s = this.stats;
    const ended = s.served + s.timedOut + s.cancelled;
    return {
      waiting: Object.fromEntries([...this.byModel.keys()].map((m) => [m, this.depth(m)])),
      limits: { timeoutMs: this.timeoutMs, perModel: this.maxPerModel, perClient: this.maxPerClient },
      queued: s.queued,
      servedAfterWait: s.served,
      timedOut: s.timedOut,
      refusedFull: s.refusedFull,
      cancelled: s.cancelled,
      waitMs: { mean: ended ? Math.round(s.waitMsTotal / ended) : 0, max: s.waitMsMax },
    };
  }
}
