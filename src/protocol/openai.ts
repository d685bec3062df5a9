// The OpenAI-compatible request surface, in one place: the client validates what apps send with these
// schemas, and the worker validates again (a strict field allow-list) before anything reaches a backend.
import { z } from "zod";

/** Default and ceiling for max_tokens when the request does not say. */
export const DEFAULT_MAX_TOKENS = 256;
export const MAX_TOKENS_LIMIT = 8192;

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullable().optional();
const streamOptions = z.strictObject({ include_usage: z.boolean().optional() }).nullable().optional();

/** Sampling fields shared by both endpoints. Anything not listed is rejected: a strict allow-list. */
const sampling = {
  model: z.string().min(1).max(256),
  max_tokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  top_k: z.number().int().min(0).max(1000).nullable().optional(),
  min_p: z.number().min(0).max(1).nullable().optional(),
  seed: z.number().int().nullable().optional(),
  stop,
  stream: z.boolean().nullable().optional(),
  stream_options: streamOptions,
  presence_penalty: z.number().min(-2).max(2).nullable().optional(),
  frequency_penalty: z.number().min(-2).max(2).nullable().optional(),
  n: z.literal(1).nullable().optional(),
  user: z.string().max(256).optional(),
};

const textPart = z.strictObject({ type: z.literal("text"), text: z.string() });
const message = z.strictObject({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(textPart)]).nullable(),
  name: z.string().max(64).optional(),
});

export const chatRequestSchema = z.strictObject({
  ...sampling,
  messages: z.array(message).min(1, "messages must contain at least one message"),
  max_completion_tokens: z.number().int().min(1).max(MAX_TOKENS_LIMIT).nullable().optional(),
});

export const completionRequestSchema = z.strictObject({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).length(1, "only one prompt per request is supported")]),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type Endpoint = "chat" | "completions";

export type ChatMessage = { role: string; content: string };

/** What a backend needs, normalized from either endpoint. */
export interface GenerationRequest {
  endpoint: Endpoint;
  model: string;
  /** Chat turns (chat endpoint) or undefined. */
  messages?: ChatMessage[];
  /** Raw prompt (completions endpoint) or undefined. */
  prompt?: string;
  maxTokens: number;
  temperature: number;
  topP?: number;
  topK?: number;
  minP?: number;
  seed?: number;
  stop: string[];
  presencePenalty?: number;
  frequencyPenalty?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = "stop" | "length" | "cancelled";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "ApiError";
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, "invalid_request_error", code, param);
}

/** Turns a zod failure into one OpenAI-style error naming the first offending field. */
function zodToApiError(err: z.ZodError): ApiError {
  const issue = err.issues[0]!;
  const path = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const keys = issue.keys;
    const where = path.length ? ` in ${path.join(".")}` : "";
    return invalidRequest(`Unrecognized request argument supplied${where}: ${keys.join(", ")}`, [...path, keys[0]!].join("."), "unknown_parameter");
  }
  const param = path.join(".") || null;
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return invalidRequest(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
  }
  return invalidRequest(`Invalid value for '${param ?? "body"}': ${issue.message}.`, param, "invalid_value");
}

function text(content: string | { type: "text"; text: string }[] | null): string {
  if (content === null) return "";
  return typeof content === "string" ? content : content.map((p) => p.text).join("");
}

/**
 * Validates a parsed JSON body for an endpoint and normalizes it. Throws ApiError (HTTP 400) naming
 * the field that is wrong. Used by the client for apps and by the worker as its allow-list.
 */
export function parseGenerationRequest(endpoint: Endpoint, body: unknown, maxTokensLimit = MAX_TOKENS_LIMIT): GenerationRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalidRequest("The request body must be a JSON object.", null, "invalid_body");
  }
  const common = (r: z.infer<typeof completionRequestSchema> | z.infer<typeof chatRequestSchema>, maxTokens: number | null | undefined) => {
    const max = maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, maxTokensLimit);
    if (max > maxTokensLimit) {
      throw invalidRequest(`max_tokens is ${max}, above this network's limit of ${maxTokensLimit}; ask for fewer tokens.`, "max_tokens", "invalid_value");
    }
    const stopList = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
    return {
      model: r.model,
      maxTokens: max,
      temperature: r.temperature ?? 1,
      topP: r.top_p ?? undefined,
      topK: r.top_k ?? undefined,
      minP: r.min_p ?? undefined,
      seed: r.seed ?? undefined,
      stop: stopList.filter((s) => s.length > 0),
      presencePenalty: r.presence_penalty ?? undefined,
      frequencyPenalty: r.frequency_penalty ?? undefined,
    };
  };
  if (endpoint === "chat") {
    const parsed = chatRequestSchema.safeParse(body);
    if (!parsed.success) throw zodToApiError(parsed.error);
    const r = parsed.data;
    return {
      endpoint,
      ...common(r, r.max_completion_tokens ?? r.max_tokens),
      messages: r.messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: text(m.content) })),
    };
  }
  const parsed = completionRequestSchema.safeParse(body);
  if (!parsed.success) throw zodToApiError(parsed.error);
  const r = parsed.data;
  return { endpoint, ...common(r, r.max_tokens), prompt: typeof r.prompt === "string" ? r.prompt : r.prompt[0]! };
}

/** Whether the app asked for the usage chunk at the end of a stream. */
export function wantsStreamUsage(body: Record<string, unknown>): boolean {
  const so = body.stream_options as { include_usage?: boolean } | null | undefined;
  return so?.include_usage === true;
}
