// The client's side of payments: a hook the client calls around each request (src/payments implements it).
import type { PaymentsReply, PaymentsRequest } from "../protocol/messages.js";
import type { Usage } from "../protocol/openai.js";

/** Sends a `payments` request to the proxy and returns its reply, checked against its schema. */
export type PaymentsCall = (body: PaymentsRequest) => Promise<PaymentsReply>;

export interface AnswerCost {
  requestId: string;
  model: string;
  usage: Usage;
  /** nanoTON decimal strings from the proxy: prompt_total_cost, completion_total_cost, total_cost. */
  cost?: Record<string, string>;
  /** The worker-signed receipt checked out (always false for an unsealed answer: nothing proves the usage). */
  receiptOk: boolean;
  workerId?: string;
  /** The answering worker's price coefficient as the proxy listed it (its receipt must price at it). */
  coefficient?: number;
}

/** What the client knows about a sealed request it sent, to check a receipt for it later (reconciliation). */
export interface SentRequest {
  model: string;
  maxTokens: number;
  /** SHA-256 (hex) of the sealed request bytes. */
  requestDigest: string;
  /** Receipt keys of the workers the request was sealed to (from attestation the client verified). */
  receiptKeys: Uint8Array[];
  /** Their price coefficients, in the same order (absent: 1000 each). */
  coefficients?: number[];
}

export interface Payer {
  /**
   * Why this payer cannot pay for a request now (e.g. its channel is still being opened), or undefined when it can.
   * The client sends requests only through proxies whose payer can pay.
   */
  unavailable?(): string | undefined;
  /** A sealed request left for the proxy (its fate is open until afterAnswer or abandon). */
  track?(requestId: string, sent: SentRequest): void;
  /** The request ended without an answer this client could settle: its fate is unknown (reconciliation decides). */
  abandon?(requestId: string): void;
  /**
   * Agrees with the proxy on which answers are owed: pays those it can verify (a worker-signed receipt for a request
   * it sent) and disputes the rest, so no debt the client cannot act on ever refuses it.
   */
  reconcile?(): Promise<void>;
  /**
   * After each (re)connection to the proxy: register the payment channel, proving the channel key over `session`
   * (the connection's TLS session binding, protocol/session-binding.ts).
   */
  onConnected?(request: PaymentsCall, session: string): Promise<void>;
  /**
   * Before a request: returns what to piggyback in the request head (the latest signed voucher), or throws an
   * ApiError (402) when the channel cannot cover the request's most it may cost: its prompt (promptBytes, priced as
   * the proxy prices it) and max_tokens.
   */
  beforeRequest(model: string, maxTokens: number, promptBytes?: number): Promise<Record<string, unknown> | undefined>;
  /** After a complete answer: record the cost and sign the next cumulative voucher (on disk before it is sent). */
  afterAnswer(answer: AnswerCost): Promise<void>;
  status?(): Record<string, unknown>;
  close?(): Promise<void>;
}
