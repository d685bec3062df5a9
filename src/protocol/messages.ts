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

export const inferenceHeadSchema = z.object({
  op: z.literal(OP_INFERENCE),
  requestId: z.string().min(1).max(128),
  endpoint: z.enum(["chat", "completions", "embeddings"]),
  model: z.string().min(1).max(256),
  maxTokens: z.number().int().min(1),
  bodyBytes: z.number().int().min(0),
  /** The body is a sealed envelope (src/crypto) that only the listed candidate workers can open. */
  sealed: z.boolean().optional(),
  candidates: z.array(z.string().min(1).max(128)).max(16).optional(),
  /** Payment data piggybacked by the client (its latest signed voucher), read by the proxy's meter. */
  payment: z.record(z.string(), z.unknown()).optional(),
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

/** One charged answer as the proxy lists it for reconciliation (payments op `reconcile`), with its signed receipt. */
export const reconcileAnswerSchema = z.object({
  requestId: z.string().min(1).max(128),
  model: z.string().min(1).max(256),
  promptTokens: z.number().int().min(0),
  completionTokens: z.number().int().min(0),
  cost: z.string().regex(/^(0|[1-9][0-9]{0,38})$/),
  receipt: z.unknown().optional(),
});
export const reconcileReplySchema = z.object({ answers: z.array(reconcileAnswerSchema).max(2_048) }).passthrough();
export type ReconcileAnswer = z.infer<typeof reconcileAnswerSchema>;

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
  receipt: z.unknown().optional(),
});
export type InferenceTrailer = z.infer<typeof inferenceTrailerSchema>;

export const modelInfoSchema = z.object({
  id: z.string(),
  contextLength: z.number().int().optional(),
  digest: z.string().optional(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;

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
  payments: z.record(z.string(), z.unknown()).optional(),
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
    }),
  ),
});
export type ModelsReply = z.infer<typeof modelsReplySchema>;

export const workersRequestSchema = z.object({ op: z.literal(OP_WORKERS), model: z.string().min(1).max(256) });

/** The proxy's candidates for a model, best first, each with the RA-TLS certificate it presented. */
export const workersReplySchema = z.object({
  workers: z
    .array(z.object({ id: z.string().min(1).max(128), cert: z.string().max(64 * 1024) }))
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
