// The proxy's metering/billing hook: admit a request before it runs (credit check, reservation) and
// settle it with the worker's usage afterwards. Payments plug in here (src/payments); the default only counts.
import type { InferenceHead } from "../protocol/messages.js";
import type { Usage } from "../protocol/openai.js";
import { CocoonError } from "../protocol/errors.js";
import type { PaymentsReply, PaymentsRequest, PayoutMessage, WorkerPayments } from "../protocol/messages.js";

export interface ClientContext {
  /** The client's node id from its Hello: a name for logs, never a credential. */
  clientId: string;
  /**
   * The client's connection (its TLS session binding, protocol/session-binding.ts): what a payment channel is bound
   * to once the client proved it owns the channel's key on this very connection. A claimed id grants nothing.
   */
  session: string;
  insecure: boolean;
}

export class MeterRefusal extends CocoonError {
  constructor(
    override readonly code: "insufficient_funds" | "voucher_missing" | "overloaded" | "bad_request",
    message: string,
  ) {
    super(code, message);
    this.name = "MeterRefusal";
  }
}

export interface SettledUsage {
  /** Cost fields added to the trailer and to OpenAI usage (nanoTON decimal strings). */
  cost?: Record<string, string>;
}

/** What the proxy offers a meter: a way to reach workers (e.g. to hand them payout vouchers). */
export interface MeterHost {
  sendToWorker(workerId: string, message: PayoutMessage): boolean;
}

export interface Meter {
  attach?(host: MeterHost): void;
  /** Called before a worker is chosen; throw MeterRefusal to refuse. `head.payment` carries a piggybacked voucher. */
  admit(client: ClientContext, head: InferenceHead): Promise<void>;
  /**
   * What this usage costs at the network's prices (nanoTON) times the serving worker's price coefficient
   * (thousandths; 1000 = base price), when the meter prices at all (receipts are judged by it).
   */
  price?(model: string, usage: Usage, coefficient?: number): bigint | undefined;
  /**
   * Called once the worker finished and its receipt checked out; returns cost to report. `receipt` is kept for audit;
   * `coefficient` is the serving worker's price coefficient (default 1000).
   */
  settle(client: ClientContext, head: InferenceHead, workerId: string, usage: Usage, receipt?: unknown, coefficient?: number): Promise<SettledUsage>;
  /** Called when an admitted request ends without usage (failure, cancel). */
  release(client: ClientContext, head: InferenceHead): void;
  /** A client's `payments` request (register a channel, hand over a voucher); the reply goes back as JSON. */
  handleClientRequest?(client: ClientContext, body: PaymentsRequest): Promise<PaymentsReply>;
  /** The client's connection closed: forget what was bound to it. */
  onClientGone?(client: ClientContext): void;
  /** A worker's announcement carried these payment details (e.g. its payout address). */
  onWorkerAnnounce?(workerId: string, payments: WorkerPayments | undefined): void;
  status?(): Record<string, unknown>;
  close?(): Promise<void>;
}

/** Counts tokens per client; charges nothing. The default until payments are configured. */
export class CountingMeter implements Meter {
  private readonly perClient = new Map<string, { requests: number; promptTokens: number; completionTokens: number }>();

  async admit(): Promise<void> {}

  async settle(client: ClientContext, _head: InferenceHead, _worker: string, usage: Usage): Promise<SettledUsage> {
    const e = this.perClient.get(client.clientId) ?? { requests: 0, promptTokens: 0, completionTokens: 0 };
    e.requests++;
    e.promptTokens += usage.prompt_tokens;
    e.completionTokens += usage.completion_tokens;
    this.perClient.set(client.clientId, e);
    return {};
  }

  release(): void {}

  status(): Record<string, unknown> {
    return { mode: "counting (no payments configured)", clients: Object.fromEntries(this.perClient) };
  }
}
