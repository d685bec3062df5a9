// Application messages carried by the protocol's JSON frames (docs/protocol.md). Each has one schema,
// used by every receiver, so a malformed message fails the same way everywhere with a clear error.
import { z } from "zod";

export const OP_INFERENCE = "inference";
export const OP_MODELS = "models";
/** Client asks for the attested candidates serving a model, to seal a request to them. */
export const OP_WORKERS = "workers";
/** Client <-> proxy payment requests (channel registration, vouchers); body and reply are JSON. */
export const OP_PAYMENTS = "payments";

// Error codes, their HTTP statuses and retryability: src/protocol/errors.ts (one vocabulary for every role).

const requestIdSchema = z.string().min(1).max(128);
/** Largest base64 voucher accepted from a peer (a signed voucher BoC is ~150 bytes). */
export const MAX_VOUCHER_BASE64 = 2048;
const voucherBase64Schema = z.string().min(1).max(MAX_VOUCHER_BASE64);
/** Most answers one reconcile or dispute message names (the proxy also lists the channel's newest this many). */
export const RECONCILE_WINDOW = 256;

/**
 * A worker-signed usage receipt as it travels: {receipt, signature}. This checks the shape; the receipt's fields and
 * signature are checked in depth by judgeReceipt / parseSignedReceipt (src/crypto/receipts.ts) before anyone pays.
 */
export const signedReceiptWireSchema = z.object({ receipt: z.record(z.string(), z.unknown()), signature: z.string().max(256) });
export type SignedReceiptWire = z.infer<typeof signedReceiptWireSchema>;

/** Payment data a client piggybacks on a request head: its channel and its latest signed voucher. */
export const requestPaymentSchema = z.object({ channel: z.string().min(1).max(128).optional(), voucher: voucherBase64Schema.optional() });
export type RequestPayment = z.infer<typeof requestPaymentSchema>;

/** Client -> proxy, op `payments` (src/payments/messages.ts describes each). */
export const paymentsRequestSchema = z.discriminatedUnion("type", [
  /** proof: hex Ed25519 signature by the channel's client key over the registration cell (CRG2). */
  z.object({ type: z.literal("register"), channel: z.string().min(1).max(128), proof: z.string().max(256) }),
  z.object({ type: z.literal("voucher"), voucher: voucherBase64Schema }),
  z.object({ type: z.literal("status") }),
  /** requests: ids whose end the client did not see. */
  z.object({ type: z.literal("reconcile"), requests: z.array(z.string().max(128)).max(RECONCILE_WINDOW * 4).optional() }),
  z.object({ type: z.literal("dispute"), requests: z.array(z.object({ requestId: requestIdSchema, reason: z.string().max(1000) })).max(RECONCILE_WINDOW) }),
]);
export type PaymentsRequest = z.infer<typeof paymentsRequestSchema>;

/** Proxy -> worker control message: a proxy-signed payout voucher (base64). */
export const payoutSchema = z.object({ type: z.literal("payout"), voucher: voucherBase64Schema });
export type PayoutMessage = z.infer<typeof payoutSchema>;

export const inferenceHeadSchema = z.object({
  op: z.literal(OP_INFERENCE),
  requestId: requestIdSchema,
  endpoint: z.enum(["chat", "completions", "embeddings", "transcriptions"]),
  model: z.string().min(1).max(256),
  maxTokens: z.number().int().min(1),
  bodyBytes: z.number().int().min(0),
  /** The body is a sealed envelope (src/crypto) that only the listed candidate workers can open. */
  sealed: z.boolean().optional(),
  candidates: z.array(z.string().min(1).max(128)).max(16).optional(),
  /** Payment data piggybacked by the client (its latest signed voucher), read by the proxy's meter. */
  payment: requestPaymentSchema.optional(),
  /** The most this client pays per token, as a price coefficient (thousandths of the base price); default 4000. */
  maxCoefficient: z.number().int().min(1).max(100_000).optional(),
});
export type InferenceHead = z.infer<typeof inferenceHeadSchema>;

/**
 * What the proxy forwards to a worker: only what serving the request needs. No payment data and no candidate list:
 * a worker must not learn which client (channel) it serves (docs/security.md: linking only through timing).
 */
export type WorkerInferenceHead = Pick<InferenceHead, "op" | "requestId" | "endpoint" | "model" | "maxTokens" | "bodyBytes" | "sealed">;
export function workerHeadOf(h: InferenceHead): WorkerInferenceHead {
  return { op: h.op, requestId: h.requestId, endpoint: h.endpoint, model: h.model, maxTokens: h.maxTokens, bodyBytes: h.bodyBytes, ...(h.sealed ? { sealed: true } : {}) };
}

/** Reply head of an inference stream, proxy -> client: which worker serves it and what its attestation says. */
export const inferenceReplySchema = z.object({
  worker: z.string().min(1).max(128),
  workerPlatform: z.string().max(64),
  workerInsecure: z.boolean(),
});
export type InferenceReply = z.infer<typeof inferenceReplySchema>;

/** Reply head of an inference stream, worker -> proxy: the worker took the request. */
export const workerReplySchema = z.object({ ok: z.literal(true), worker: z.string().min(1).max(128) });
export type WorkerReply = z.infer<typeof workerReplySchema>;

/** One charged answer as the proxy lists it for reconciliation (payments op `reconcile`), with its signed receipt. */
export const reconcileAnswerSchema = z.object({
  requestId: requestIdSchema,
  model: z.string().min(1).max(256),
  promptTokens: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
  cost: z.string().regex(/^(0|[1-9][0-9]{0,38})$/),
  receipt: signedReceiptWireSchema.optional(),
});
export type ReconcileAnswer = z.infer<typeof reconcileAnswerSchema>;

const nanoTonSchema = z.string().regex(/^(0|[1-9][0-9]{0,38})$/);
/** Proxy -> client, in every payments reply: the proxy's books for the client's channel (nanoTON, decimal strings). */
export const channelViewSchema = z.object({
  channel: z.string().min(1).max(128),
  capacity: nanoTonSchema,
  /** Highest cumulative voucher the proxy holds. */
  signed: nanoTonSchema,
  /** What the proxy charged on this channel. */
  charged: nanoTonSchema,
  /** charged - signed when positive: answers the client has not paid yet. */
  owed: nanoTonSchema,
  redeemed: nanoTonSchema,
});
export type ChannelView = z.infer<typeof channelViewSchema>;
/** Proxy -> client, the reply to op `payments`: the channel view, plus the charged answers (`reconcile`) or what a
 * `dispute` wrote off. */
export const paymentsReplySchema = channelViewSchema.extend({
  ok: z.literal(true),
  answers: z.array(reconcileAnswerSchema).max(2_048).optional(),
  writtenOff: nanoTonSchema.optional(),
});
export type PaymentsReply = z.infer<typeof paymentsReplySchema>;

/**
 * Control message (connection level) that asks to stop generating a request but still finish it properly: the
 * worker ends the answer with its final chunk and a signed receipt for what it generated, so client and proxy settle
 * the same request at the same cost (a cancelled request is billed for the tokens it produced). Client -> proxy,
 * proxy -> the worker running it. A stream reset stays the hard stop (nothing is billed, nothing is signed).
 */
export const cancelSchema = z.object({ type: z.literal("cancel"), requestId: z.string().min(1).max(128) });
export type CancelMessage = z.infer<typeof cancelSchema>;

export const usageSchema = z.object({
  prompt_tokens: z.number().int().min(0),
  completion_tokens: z.number().int().min(0),
  total_tokens: z.number().int().min(0),
});

/** Trailer of a finished inference stream (worker -> proxy -> client). */
export const inferenceTrailerSchema = z.object({
  usage: usageSchema,
  finishReason: z.enum(["stop", "length", "cancelled", "tool_calls", "content_filter"]),
  /** Set by the worker: how the tokens were counted. */
  usageSource: z.enum(["backend", "engine", "tokenizer"]).optional(),
  /** Added by the proxy. */
  worker: z.string().optional(),
  timings: z.record(z.string(), z.number()).optional(),
  cost: z.record(z.string(), z.string()).optional(),
  /** Worker-signed usage receipt (sealed requests): {receipt, signature}. */
  receipt: signedReceiptWireSchema.optional(),
});
export type InferenceTrailer = z.infer<typeof inferenceTrailerSchema>;

export const modelInfoSchema = z.object({
  id: z.string(),
  contextLength: z.number().int().optional(),
  digest: z.string().optional(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;

/** Payment details a worker announces: where the proxy pays it. */
export const workerPaymentsSchema = z.object({ payoutAddress: z.string().min(1).max(128) });
export type WorkerPayments = z.infer<typeof workerPaymentsSchema>;

/** Control message a worker sends its proxy on connect and whenever its state changes. */
export const announceSchema = z.object({
  type: z.literal("announce"),
  workerId: z.string().min(1).max(128),
  models: z.array(modelInfoSchema).max(64),
  capacity: z.number().int().min(0).max(100_000),
  enabled: z.boolean(),
  backend: z.string().max(64),
  reason: z.string().max(1000).optional(),
  /** The worker's status page, for operators. */
  statusUrl: z.string().max(512).optional(),
  /** Payment details, e.g. the worker's payout address. */
  payments: workerPaymentsSchema.optional(),
  /** Price coefficient in thousandths of the root's base price (1000 = 1x; src/payments/pricing.ts); absent = 1000. */
  priceCoefficient: z.number().int().min(1).max(100_000).optional(),
});
export type Announce = z.infer<typeof announceSchema>;

export const modelsReplySchema = z.object({
  models: z.array(
    z.object({
      id: z.string(),
      workers: z.number().int(),
      capacity: z.number().int(),
      contextLength: z.number().int().optional(),
      created: z.number().int(),
      /** Price coefficients of the workers serving it (thousandths of the base price): the range on offer. */
      minCoefficient: z.number().int().optional(),
      maxCoefficient: z.number().int().optional(),
    }),
  ),
});
export type ModelsReply = z.infer<typeof modelsReplySchema>;

export const workersRequestSchema = z.object({
  op: z.literal(OP_WORKERS),
  model: z.string().min(1).max(256),
  /** Only workers whose price coefficient is at most this. */
  maxCoefficient: z.number().int().min(1).max(100_000).optional(),
});

/** The proxy's candidates for a model, best first, each with the RA-TLS certificate it presented. */
export const workersReplySchema = z.object({
  workers: z
    .array(z.object({ id: z.string().min(1).max(128), cert: z.string().max(64 * 1024), priceCoefficient: z.number().int().min(1).max(100_000).optional() }))
    .max(64),
});
export type WorkersReply = z.infer<typeof workersReplySchema>;

/** Parses with a schema and turns a failure into one readable line naming the field. */
export function parseMessage<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const path = issue.path.join(".") || "(root)";
  throw new Error(`malformed ${what}: ${path}: ${issue.message}`);
}

/** Every connection-level control message (Control frames), one schema each above. */
export type ControlMessage = Announce | CancelMessage | PayoutMessage;
