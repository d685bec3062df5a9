// The plaintext of one answer chunk, worker -> client (sealed end to end, or in clear with --no-seal):
//   {"deltas": ["text", {...}, ...]}              the deltas the engine produced together, in order
//   {"deltas": [], "finishReason": "stop"|...}    the final chunk
// A delta is a string (answer text of choice 0: the common case, kept small) or an object for everything else:
// tool-call fragments, logprobs, a refusal, text of another choice (n > 1), a choice's own finish reason, or one
// embedding vector. One chunk per batch rather than per token keeps a fast engine's answer to a few chunks; the
// client turns every delta into its own event for the app.
import { z } from "zod";
import { StreamError } from "./connection.js";

const toolCallDelta = z.strictObject({
  index: z.number().int().min(0).max(1024),
  id: z.string().max(256).optional(),
  type: z.literal("function").optional(),
  function: z.strictObject({ name: z.string().max(256).optional(), arguments: z.string().optional() }).optional(),
});

const topLogprob = z.strictObject({ token: z.string(), logprob: z.number(), bytes: z.array(z.number().int()).nullable() });
const chatLogprob = topLogprob.extend({ top_logprobs: z.array(topLogprob) });
/** Chat logprobs ({content: [...]}) or completions logprobs (parallel arrays), as OpenAI shapes each. */
const logprobs = z.union([
  z.strictObject({ content: z.array(chatLogprob).nullable().optional(), refusal: z.array(chatLogprob).nullable().optional() }),
  z.strictObject({
    tokens: z.array(z.string()),
    token_logprobs: z.array(z.number().nullable()),
    top_logprobs: z.array(z.record(z.string(), z.number()).nullable()).nullable(),
    text_offset: z.array(z.number()),
  }),
]);

export const finishReasonSchema = z.enum(["stop", "length", "cancelled", "tool_calls", "content_filter"]);

const structuredDelta = z.strictObject({
  /** Which choice (n > 1, or several prompts); 0 when absent. */
  index: z.number().int().min(0).max(1024).optional(),
  content: z.string().optional(),
  refusal: z.string().optional(),
  tool_calls: z.array(toolCallDelta).max(128).optional(),
  logprobs: logprobs.optional(),
  /** This choice ended (for answers with several choices; otherwise the trailer's finish reason is the answer's). */
  finish_reason: finishReasonSchema.optional(),
  /** An embeddings answer: the vector of input `index` (base64 of little-endian float32 when the app asked so). */
  embedding: z.union([z.array(z.number()), z.string()]).optional(),
});

export type StructuredDelta = z.infer<typeof structuredDelta>;
export type ToolCallDelta = z.infer<typeof toolCallDelta>;
export type Logprobs = z.infer<typeof logprobs>;
/** Text of choice 0, or a structured delta. */
export type AnswerDelta = string | StructuredDelta;

const deltasSchema = z.array(z.union([z.string(), structuredDelta]));

export function encodeAnswerChunk(deltas: readonly AnswerDelta[], finishReason?: string): Buffer {
  return Buffer.from(JSON.stringify(finishReason === undefined ? { deltas } : { deltas, finishReason }));
}

/** The deltas of a chunk (untrusted bytes): throws a StreamError saying what was wrong. */
export function decodeAnswerChunk(data: Uint8Array): AnswerDelta[] {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8"));
  } catch {
    throw new StreamError("worker_failed", "the worker sent a malformed chunk (not JSON; expected {\"deltas\": [strings or delta objects]})");
  }
  const parsed = deltasSchema.safeParse((v as { deltas?: unknown } | null)?.deltas);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new StreamError("worker_failed", `the worker sent a malformed chunk (expected {"deltas": [strings or delta objects]}; at deltas.${issue.path.join(".")}: ${issue.message})`);
  }
  return parsed.data;
}
