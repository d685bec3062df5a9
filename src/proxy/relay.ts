// One attempt of one client request on one worker, as the proxy relays it: open the worker's stream and send the
// sealed request (reply head), pass each answer chunk on (digest, byte count), then at the trailer check the usage
// (signed receipt, token bound) and bill it. Each event has its own method; ProxyNode.relay() retries on another
// worker when an attempt throws RetryableFailure.
import type { Stream } from "../protocol/connection.js";
import { StreamError } from "../protocol/connection.js";
import { inferenceTrailerSchema, parseMessage, workerHeadOf, workerReplySchema, type InferenceHead, type InferenceReply, type InferenceTrailer } from "../protocol/messages.js";
import { judgeReceipt, requestDigest, ResponseDigest } from "../crypto/index.js";
import type { NodeObservability } from "../observability/node.js";
import type { Logger } from "../util/log.js";
import { WORKER_FULL_BACKOFF_MS, type PoolWorker, type WorkerPool } from "./pool.js";
import type { ClientContext, Meter } from "./meter.js";
import { countUsage, type RequestCounters } from "../observability/request-counters.js";

/** One client request while the proxy relays it (over one or more attempts). */
export interface RelayState {
  /** The worker running it now, once one was picked. */
  worker?: PoolWorker;
  /** The client asked to stop generating (soft cancel): the worker still ends the answer with its receipt. */
  cancelled: boolean;
  /**
   * Aborts on a soft cancel or when the client's stream goes away (ends a wait in the queue). Made when the request
   * first waits in the queue: most never do, and an AbortController is dear (src/protocol/connection.ts Stream.signal).
   */
  stop?: AbortController;
}

/** Raised by an attempt to say "try the next worker". */
export class RetryableFailure extends Error {
  /**
   * staleKeys: the worker could not open the sealed request (the client's candidate list was stale).
   * busy: the worker was at capacity (shared with its other proxies): not a failure and not an attempt; wait for a slot.
   * Neither is the worker's fault.
   */
  constructor(message: string, readonly staleKeys = false, readonly busy = false) {
    super(message);
  }
}

/** The proxy's request counters (its /status `requests`, `receipts` and `tokens`). */
export interface ProxyRequestStats extends RequestCounters {
  retried: number;
  rejected: number;
  receiptsVerified: number;
  receiptsRefused: number;
}

/** What an attempt uses of the proxy that runs it. */
export interface RelayHost {
  readonly pool: WorkerPool;
  readonly meter: Meter;
  readonly stats: ProxyRequestStats;
  readonly log: Logger;
  readonly obs: NodeObservability;
  /** A slot may be free (this attempt ended, or a worker's at-capacity back-off did): wake requests waiting for one. */
  kickQueue(): void;
  /** ProxyNode's relayedChunk/relayedTrailer: what the client gets; only the tamper tests change it. */
  relayedChunk(chunk: Buffer, index: number): Buffer;
  relayedTrailer(trailer: Record<string, unknown>): Record<string, unknown>;
}

/** Codes that fail the same way on every worker (or, replayed, were refused as they must be): reported, not retried. */
const FINAL_OPEN_CODES = new Set(["replayed", "bad_request", "model_not_found", "unsupported_parameter", "context_length_exceeded"]);

/** One request on one worker. run() once; it tells the outcome as relay() needs it. */
export class WorkerRelay {
  private readonly started = Date.now();
  private upstream: Stream | undefined;
  /** Sealed answer bytes relayed so far: none means the client saw nothing yet, so another worker may still serve. */
  private relayedBytes = 0;
  private chunks = 0;
  /** Over the sealed answer as relayed, for the worker's signed receipt (sealed requests only). */
  private readonly digest: ResponseDigest | undefined;

  constructor(
    private readonly host: RelayHost,
    private readonly worker: PoolWorker,
    private readonly ctx: ClientContext,
    private readonly head: InferenceHead,
    private readonly body: Buffer,
    private readonly client: Stream,
    private readonly state: RelayState,
  ) {
    this.digest = head.sealed ? new ResponseDigest() : undefined;
  }

  /**
   * True when usage was settled; false when the request ended here (the client was answered with an error, or went
   * away); throws RetryableFailure when another worker should try, and rethrows when the client was gone at the open.
   */
  async run(): Promise<boolean> {
    const { worker, client } = this;
    worker.active++;
    const onCancel = () => this.upstream?.reset("cancelled", "the client cancelled the request");
    client.signal.addEventListener("abort", onCancel, { once: true });
    try {
      const upstream = await this.open();
      if (!upstream) return false;
      try {
        for await (const chunk of upstream) await this.onChunk(chunk);
      } catch (err) {
        return this.onAnswerError(err as StreamError);
      }
      return await this.onTrailer(upstream.trailer);
    } finally {
      worker.active--;
      client.signal.removeEventListener("abort", onCancel);
      this.host.kickQueue(); // this slot is free again
    }
  }

  /** Opens the worker's stream, sends the request and waits for the worker's reply head; undefined when it ended here. */
  private async open(): Promise<Stream | undefined> {
    const { worker, head } = this;
    try {
      const opened = worker.conn.open(workerHeadOf(head));
      this.upstream = opened;
      this.state.worker = worker;
      if (this.state.cancelled) worker.conn.sendControl({ type: "cancel", requestId: head.requestId });
      await opened.write(this.body);
      opened.end();
      const took = workerReplySchema.safeParse(await opened.replyHead());
      if (!took.success) throw new StreamError("worker_failed", `worker ${worker.id} sent a malformed reply head`);
      return opened;
    } catch (err) {
      return this.onOpenError(err as StreamError);
    }
  }

  /** The worker refused or failed before answering: retry elsewhere (throws RetryableFailure), or report it. */
  private onOpenError(e: StreamError): undefined {
    const { worker } = this;
    if (this.client.signal.aborted) throw e;
    if (e.code === "stale_keys") throw new RetryableFailure(e.message, true);
    if (e.code === "overloaded") {
      // Full with other proxies' requests: count it as full for a moment, then let waiting requests try again.
      // The timer ends the back-off itself: a timer may fire a millisecond before Date.now() passes fullUntil,
      // and a kick that still saw the worker full would leave its waiters asleep until their deadline (nothing
      // else on this proxy wakes them: the requests that fill the worker came through other proxies).
      const until = (worker.fullUntil = Date.now() + WORKER_FULL_BACKOFF_MS);
      setTimeout(() => {
        if (worker.fullUntil === until) worker.fullUntil = undefined;
        this.host.kickQueue();
      }, WORKER_FULL_BACKOFF_MS).unref();
      throw new RetryableFailure(e.message, false, true);
    }
    // A bad request fails the same way on every worker, and a replayed one was refused as it must be: report
    // it instead of retrying, and do not count a replay against the worker.
    if (e.code !== "replayed") this.host.pool.recordFailure(worker, e.message);
    if (FINAL_OPEN_CODES.has(e.code)) {
      this.host.stats.failed++;
      this.client.reset(e.code, e.message);
      return undefined;
    }
    throw new RetryableFailure(e.message);
  }

  /** One answer chunk: the reply head goes out before the first, then the chunk as the worker sent it. */
  private async onChunk(chunk: Buffer): Promise<void> {
    if (this.relayedBytes === 0) this.client.reply(this.replyHead());
    this.relayedBytes += chunk.length;
    this.digest?.update(chunk);
    await this.client.write(this.host.relayedChunk(chunk, this.chunks));
    this.chunks++;
  }

  /** The answer broke off (worker gone, client gone): retry while the client saw nothing, else report it. */
  private onAnswerError(e: StreamError): false {
    const { host, worker, client } = this;
    if (client.signal.aborted || client.error) {
      host.stats.cancelled++;
      return false;
    }
    host.pool.recordFailure(worker, e.message);
    if (this.relayedBytes === 0) throw new RetryableFailure(e.message);
    host.stats.failed++;
    client.reset("worker_failed", `worker ${worker.id} failed mid-answer: ${e.message}`);
    return false;
  }

  /** The worker's trailer: check the usage it claims, then bill it; false when it was refused (nothing billed). */
  private async onTrailer(raw: unknown): Promise<boolean> {
    const { host, worker, head, client } = this;
    let trailer: InferenceTrailer;
    try {
      trailer = parseMessage(inferenceTrailerSchema, raw, "worker trailer");
    } catch (err) {
      host.pool.recordFailure(worker, (err as Error).message);
      host.stats.failed++;
      client.reset("worker_failed", `worker ${worker.id} sent an invalid trailer: ${(err as Error).message}`);
      return false;
    }
    const billed = host.meter.price?.(head.model, trailer.usage, worker.priceCoefficient);
    const receiptProblem = this.digest ? this.checkReceipt(this.digest, billed, trailer) : undefined;
    if (receiptProblem) {
      host.pool.recordFailure(worker, receiptProblem);
      host.log.warn(`worker ${worker.id}: usage receipt refused for ${head.requestId}: ${receiptProblem}`);
      host.stats.failed++;
      host.stats.receiptsRefused++;
      client.reset("worker_failed", `worker ${worker.id} sent an unacceptable usage receipt (${receiptProblem}); this request is not billed`);
      return false;
    }
    if (trailer.usage.completion_tokens > head.maxTokens) {
      host.pool.recordFailure(worker, "over-reported tokens");
      host.log.warn(`worker ${worker.id} reported ${trailer.usage.completion_tokens} completion tokens for max_tokens ${head.maxTokens}; refusing its usage`);
      host.stats.failed++;
      client.reset("worker_failed", `worker ${worker.id} reported impossible usage`);
      return false;
    }
    return this.settle(trailer);
  }

  /** Verifies a sealed request's worker-signed receipt against what this proxy relayed; a reason if unacceptable. */
  private checkReceipt(digest: ResponseDigest, billed: bigint | undefined, trailer: InferenceTrailer): string | undefined {
    const { worker, head, body } = this;
    // The worker signs with the key of the identity the client sealed to: its current one, or the one it had
    // just before a renewal.
    const keys = [worker.peer, worker.previousPeer]
      .map((p) => (p?.claims as { receiptPublicKey?: string } | undefined)?.receiptPublicKey)
      .filter((k): k is string => typeof k === "string")
      .map((k) => Buffer.from(k, "hex"));
    const problem = judgeReceipt(
      trailer.receipt,
      {
        requestId: head.requestId, model: head.model, maxTokens: head.maxTokens, requestDigest: requestDigest(body), responseDigest: digest.hex(), workerId: worker.id,
        sealedRequestBytes: body.length, sealedAnswerBytes: this.relayedBytes, ...(billed !== undefined ? { billedCostNano: billed } : {}),
      },
      keys,
      trailer.usage,
    );
    if (!problem) this.host.stats.receiptsVerified++;
    return problem;
  }

  /** Accepted usage: the meter bills it (receipt stored first), the counters move, the client gets the trailer with its cost. */
  private async settle(trailer: InferenceTrailer): Promise<true> {
    const { host, worker, head, client } = this;
    if (this.relayedBytes === 0) client.reply(this.replyHead());
    const settled = await host.meter.settle(this.ctx, head, worker.id, trailer.usage, trailer.receipt, worker.priceCoefficient);
    const ms = Date.now() - this.started;
    host.pool.recordSuccess(worker, ms, trailer.usage.prompt_tokens, trailer.usage.completion_tokens);
    host.stats.completed++;
    countUsage(host.stats, trailer.usage);
    const out = { ...trailer, worker: worker.id, timings: { ...trailer.timings, proxyMs: ms }, ...(settled.cost ? { cost: settled.cost } : {}) };
    client.end(host.relayedTrailer(out));
    host.obs.request({ model: head.model, requestId: head.requestId, outcome: trailer.finishReason === "cancelled" ? "cancelled" : "completed", ttftMs: trailer.timings?.ttftMs, totalMs: ms, promptTokens: trailer.usage.prompt_tokens, completionTokens: trailer.usage.completion_tokens, worker: worker.id, ...(settled.cost?.total_cost ? { costNano: settled.cost.total_cost } : {}) });
    return true;
  }

  /** What the client learns about the worker that serves it. */
  private replyHead(): InferenceReply {
    const { worker } = this;
    return { worker: worker.id, workerPlatform: worker.peer.platform ?? "unattested", workerInsecure: worker.peer.insecure };
  }
}
