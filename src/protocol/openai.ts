// The OpenAI-compatible request surface, in one place: the client validates what apps send with these
// schemas, and the worker validates again (a strict field allow-list) before anything reaches a backend.
//
// Every parameter of OpenAI's current chat completions, completions and embeddings APIs is accepted here (a typo
// is still refused as unknown_parameter). Whether a backend can honour a value is the backend's decision: the
// openai backend passes the app's fields through unchanged, the embedded one implements what llama.cpp can and
// refuses the rest with unsupported_parameter, only for values that would change the answer (docs/openai.md).
import { z } from "zod";

/** Default and ceiling for max_tokens when the request does not say. */
export const DEFAULT_MAX_TOKENS = 256;
export const MAX_TOKENS_LIMIT = 8192;
/** Most choices (n) one request may ask for. */
export const MAX_CHOICES = 8;
/** Most inputs in one embeddings request (OpenAI's own limit). */
export const MAX_EMBEDDING_INPUTS = 2048;

const str = z.string();
const nullish = <T extends z.ZodType>(t: T) => t.nullable().optional();

const stop = nullish(z.union([str, z.array(str).max(4)]));
const streamOptions = nullish(z.strictObject({ include_usage: z.boolean().optional(), include_obfuscation: z.boolean().optional() }));
/** Token id (as a string key) -> bias from -100 to 100. */
const logitBias = nullish(z.record(z.string().regex(/^\d+$/, "keys must be token ids"), z.number().min(-100).max(100)));
const metadata = nullish(z.record(z.string().max(64), z.string().max(512)));

/** Sampling fields shared by the generation endpoints. Anything not listed is rejected: a strict allow-list. */
const sampling = {
  model: z.string().min(1).max(256),
  max_tokens: nullish(z.number().int().min(1)),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().min(0).max(1)),
  // Not OpenAI's, but understood by llama.cpp, vLLM and SGLang.
  top_k: nullish(z.number().int().min(0).max(1000)),
  min_p: nullish(z.number().min(0).max(1)),
  seed: nullish(z.number().int()),
  stop,
  stream: nullish(z.boolean()),
  stream_options: streamOptions,
  presence_penalty: nullish(z.number().min(-2).max(2)),
  frequency_penalty: nullish(z.number().min(-2).max(2)),
  n: nullish(z.number().int().min(1).max(MAX_CHOICES)),
  logit_bias: logitBias,
  user: z.string().max(256).optional(),
};

// --- chat messages ---------------------------------------------------------------------------------------------

const textPart = z.strictObject({ type: z.literal("text"), text: str });
const imagePart = z.strictObject({ type: z.literal("image_url"), image_url: z.strictObject({ url: str, detail: z.enum(["auto", "low", "high"]).optional() }) });
const audioPart = z.strictObject({ type: z.literal("input_audio"), input_audio: z.strictObject({ data: str, format: z.enum(["wav", "mp3"]) }) });
const filePart = z.strictObject({ type: z.literal("file"), file: z.strictObject({ file_data: str.optional(), file_id: str.optional(), filename: str.optional() }) });
const refusalPart = z.strictObject({ type: z.literal("refusal"), refusal: str });
const userPart = z.discriminatedUnion("type", [textPart, imagePart, audioPart, filePart]);

const toolCall = z.strictObject({
  id: z.string().max(256),
  type: z.literal("function"),
  function: z.strictObject({ name: z.string().max(256), arguments: str }),
});
const name = z.string().max(64).optional();

const message = z.discriminatedUnion("role", [
  z.strictObject({ role: z.literal("system"), content: z.union([str, z.array(textPart)]), name }),
  z.strictObject({ role: z.literal("developer"), content: z.union([str, z.array(textPart)]), name }),
  z.strictObject({ role: z.literal("user"), content: z.union([str, z.array(userPart)]), name }),
  z.strictObject({
    role: z.literal("assistant"),
    content: nullish(z.union([str, z.array(z.discriminatedUnion("type", [textPart, refusalPart]))])),
    refusal: nullish(str),
    name,
    audio: nullish(z.strictObject({ id: str })),
    tool_calls: z.array(toolCall).optional(),
    function_call: nullish(z.strictObject({ name: str, arguments: str })),
  }),
  z.strictObject({ role: z.literal("tool"), content: z.union([str, z.array(textPart)]), tool_call_id: z.string().min(1).max(256) }),
  z.strictObject({ role: z.literal("function"), content: nullish(str), name: z.string().max(64) }),
]);

/** A JSON Schema object, as apps send it (validated structurally by the backend that uses it). */
const jsonSchemaObject = z.record(z.string(), z.unknown());

const functionDef = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "function names are 1 to 64 letters, digits, underscores or dashes"),
  description: str.optional(),
  parameters: jsonSchemaObject.optional(),
  strict: nullish(z.boolean()),
});
const tool = z.strictObject({ type: z.literal("function"), function: functionDef });
const toolChoice = z.union([
  z.enum(["none", "auto", "required"]),
  z.strictObject({ type: z.literal("function"), function: z.strictObject({ name: str }) }),
  z.strictObject({ type: z.literal("allowed_tools"), allowed_tools: z.strictObject({ mode: z.enum(["auto", "required"]), tools: z.array(z.record(z.string(), z.unknown())) }) }),
]);

const responseFormat = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("text") }),
  z.strictObject({ type: z.literal("json_object") }),
  z.strictObject({
    type: z.literal("json_schema"),
    json_schema: z.strictObject({
      name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, "schema names are 1 to 64 letters, digits, underscores or dashes"),
      description: str.optional(),
      schema: jsonSchemaObject.optional(),
      strict: nullish(z.boolean()),
    }),
  }),
]);

export const chatRequestSchema = z.strictObject({
  ...sampling,
  messages: z.array(message).min(1, "messages must contain at least one message"),
  max_completion_tokens: nullish(z.number().int().min(1)),
  logprobs: nullish(z.boolean()),
  top_logprobs: nullish(z.number().int().min(0).max(20)),
  tools: nullish(z.array(tool).max(128)),
  tool_choice: nullish(toolChoice),
  parallel_tool_calls: nullish(z.boolean()),
  functions: nullish(z.array(functionDef).max(128)),
  function_call: nullish(z.union([z.enum(["none", "auto"]), z.strictObject({ name: str })])),
  response_format: nullish(responseFormat),
  metadata,
  store: nullish(z.boolean()),
  reasoning_effort: nullish(z.enum(["none", "minimal", "low", "medium", "high"])),
  verbosity: nullish(z.enum(["low", "medium", "high"])),
  service_tier: nullish(z.enum(["auto", "default", "flex", "scale", "priority"])),
  modalities: nullish(z.array(z.enum(["text", "audio"]))),
  audio: nullish(z.strictObject({ voice: str, format: z.enum(["wav", "aac", "mp3", "flac", "opus", "pcm16"]) })),
  prediction: nullish(z.strictObject({ type: z.literal("content"), content: z.union([str, z.array(textPart)]) })),
  web_search_options: nullish(z.record(z.string(), z.unknown())),
  prompt_cache_key: nullish(z.string().max(1024)),
  prompt_cache_retention: nullish(z.string().max(32)),
  safety_identifier: nullish(z.string().max(256)),
});

const tokenIds = z.array(z.number().int().min(0));
export const completionRequestSchema = z.strictObject({
  ...sampling,
  prompt: z.union([str, z.array(str).min(1), tokenIds.min(1), z.array(tokenIds).min(1)]),
  logprobs: nullish(z.number().int().min(0).max(5)),
  echo: nullish(z.boolean()),
  best_of: nullish(z.number().int().min(1).max(MAX_CHOICES)),
  suffix: nullish(str),
});

export const embeddingRequestSchema = z.strictObject({
  model: z.string().min(1).max(256),
  input: z.union([str, z.array(str).min(1).max(MAX_EMBEDDING_INPUTS), tokenIds.min(1), z.array(tokenIds).min(1).max(MAX_EMBEDDING_INPUTS)]),
  encoding_format: nullish(z.enum(["float", "base64"])),
  dimensions: nullish(z.number().int().min(1)),
  user: z.string().max(256).optional(),
});

export type ChatRequest = z.infer<typeof chatRequestSchema>;
export type CompletionRequest = z.infer<typeof completionRequestSchema>;
export type EmbeddingRequestBody = z.infer<typeof embeddingRequestSchema>;
export type GenerationEndpoint = "chat" | "completions";
export type Endpoint = GenerationEndpoint | "embeddings" | "transcriptions";
export type ToolDef = z.infer<typeof tool>;
export type ToolCall = z.infer<typeof toolCall>;
export type ResponseFormat = z.infer<typeof responseFormat>;

/** One chat turn as backends see it: text content, and the tool-calling fields where the turn has them. */
export interface ChatMessage {
  role: string;
  content: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
}

/** Which tool the answer must call: none, any the model picks (auto), at least one (required), or one named. */
export type ToolChoice = "none" | "auto" | "required" | { name: string };

/** What a backend needs, normalized from either generation endpoint. */
export interface GenerationRequest {
  endpoint: GenerationEndpoint;
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
  /** Choices asked for (default 1). */
  n?: number;
  /** Token id -> bias (-100 bans the token). */
  logitBias?: Record<string, number>;
  /** Chat: logprobs of each answer token, with this many alternatives (0 = just the token's). Completions: same. */
  logprobs?: { top: number };
  tools?: ToolDef[];
  toolChoice?: ToolChoice;
  responseFormat?: ResponseFormat;
  /** Content parts the embedded engine cannot read (image, audio, file): where each is and its type, for its refusal. */
  nonTextParts?: { param: string; type: string }[];
  /** Fields that change the answer in ways only a real remote engine implements (audio output, web search...). */
  engineOnly?: string[];
  /** The app's validated body, unchanged: the openai backend forwards it so every field reaches the engine. */
  body?: ChatRequest | CompletionRequest;
}

/** An embeddings request, normalized. */
export interface EmbeddingRequest {
  model: string;
  /** Text inputs, or token id arrays (passed through; the embedded engine detokenizes them). */
  input: string[] | number[][];
  dimensions?: number;
  encodingFormat: "float" | "base64";
  body: EmbeddingRequestBody;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = "stop" | "length" | "cancelled" | "tool_calls" | "content_filter";

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

/** A parameter this backend cannot honour at the value asked (a default value is never refused). */
export function unsupportedParameter(param: string, why: string): ApiError {
  return invalidRequest(`Unsupported parameter: '${param}' ${why}`, param, "unsupported_parameter");
}

/** How OpenAI names a JSON value's type in its error messages. */
function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a decimal number";
  if (typeof v === "string") return "a string";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "object") return "an object";
  return typeof v;
}

function valueAt(body: unknown, path: PropertyKey[]): unknown {
  let v = body;
  for (const k of path) v = v !== null && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

/** OpenAI writes paths as messages[0].content. */
function paramPath(path: PropertyKey[]): string {
  return path.map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`)).join("");
}

/**
 * The most telling issue of a failure: inside a union, the branch the value matched in type but failed deeper
 * (an array of five stop strings is "too long", not "not a string").
 */
function mostSpecific(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union" || issue.errors.length === 0) return issue;
  const branches = issue.errors.filter((b) => b.length > 0);
  const typed = branches.find((b) => !(b[0]!.code === "invalid_type" && b[0]!.path.length === 0)) ?? branches[0];
  if (!typed) return issue;
  const inner = typed[0]!;
  return mostSpecific({ ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue);
}

/** Turns a zod failure into one OpenAI-style error naming the first offending field, its type or range. */
function zodToApiError(err: z.ZodError, body: unknown): ApiError {
  const issue = mostSpecific(err.issues[0]!);
  const param = paramPath(issue.path) || null;
  const got = valueAt(body, issue.path);
  const shown = JSON.stringify(got)?.slice(0, 80) ?? String(got);
  if (issue.code === "unrecognized_keys") {
    const where = param ? ` in '${param}'` : "";
    const key = issue.keys[0]!;
    return invalidRequest(`Unrecognized request argument supplied${where}: ${issue.keys.join(", ")}. Check the spelling against the OpenAI API reference (docs/openai.md lists what each backend does).`, param ? `${param}.${key}` : key, "unknown_parameter");
  }
  if (got === undefined) return invalidRequest(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
  if (issue.code === "invalid_type") {
    const e = issue.expected as string;
    const expected = e === "int" ? "an integer" : e === "array" ? "an array" : e === "object" ? "an object" : `a ${e}`;
    // A whole number outside the safe range is an integer still: say so, not "a decimal".
    return invalidRequest(`Invalid type for '${param}': expected ${expected}, but got ${typeName(got)} instead.`, param, "invalid_type");
  }
  if (issue.code === "too_big" || issue.code === "too_small") {
    const above = issue.code === "too_big";
    const bound = above ? (issue as { maximum: number | bigint }).maximum : (issue as { minimum: number | bigint }).minimum;
    if (issue.origin === "number" || issue.origin === "int") {
      const kind = issue.origin === "int" ? "integer" : "decimal";
      const cmp = above ? (issue.inclusive ? "<=" : "<") : issue.inclusive ? ">=" : ">";
      return invalidRequest(`Invalid '${param}': ${kind} ${above ? "above maximum" : "below minimum"} value. Expected a value ${cmp} ${bound}, but got ${shown} instead.`, param, `${kind}_${above ? "above_max" : "below_min"}_value`);
    }
    const what = issue.origin === "string" ? "string" : "array";
    const unit = what === "string" ? "characters" : "items";
    const custom = issue.message && !/^Too (big|small)/.test(issue.message) ? ` ${issue.message}.` : "";
    return invalidRequest(`Invalid '${param}': ${what} too ${above ? "long" : "short"}. Expected ${above ? "at most" : "at least"} ${bound} ${unit}, but got ${Array.isArray(got) || typeof got === "string" ? got.length : shown}.${custom}`, param, `${what}_${above ? "above_max_length" : "below_min_length"}`);
  }
  if (issue.code === "invalid_union" && "options" in issue && Array.isArray(issue.options)) {
    // A discriminated union whose tag (role, type) matched no branch.
    return invalidRequest(`Invalid value for '${param}': ${shown}. Supported values are: ${issue.options.map((v) => `'${String(v)}'`).join(", ")}.`, param, "invalid_value");
  }
  if (issue.code === "invalid_value") {
    return invalidRequest(`Invalid value for '${param}': ${shown}. Supported values are: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}.`, param, "invalid_value");
  }
  if (issue.code === "invalid_union") {
    return invalidRequest(`Invalid value for '${param}': ${shown} has none of the accepted shapes (see the OpenAI API reference).`, param, "invalid_value");
  }
  return invalidRequest(`Invalid value for '${param ?? "body"}': ${issue.message}.`, param, "invalid_value");
}

function text(content: string | readonly { type: string; text?: string; refusal?: string }[] | null | undefined): string {
  if (content == null) return "";
  return typeof content === "string" ? content : content.map((p) => p.text ?? p.refusal ?? "").join("");
}

function requireObject(body: unknown): asserts body is Record<string, unknown> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalidRequest(`The request body must be a JSON object, not ${typeName(body)}.`, null, "invalid_body");
  }
}

/** The request's max_tokens, or the default; one limit for the whole network (client and worker parse alike). */
function maxTokensOf(value: number | null | undefined, param: string): number {
  const max = value ?? Math.min(DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT);
  if (max > MAX_TOKENS_LIMIT) {
    throw invalidRequest(`Invalid '${param}': integer above maximum value. Expected a value <= ${MAX_TOKENS_LIMIT} (this network's limit), but got ${max} instead. Ask for fewer tokens.`, param, "integer_above_max_value");
  }
  return max;
}

function sharedFields(r: ChatRequest | CompletionRequest) {
  const stopList = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
  const bias = r.logit_bias && Object.keys(r.logit_bias).length ? r.logit_bias : undefined;
  return {
    model: r.model,
    temperature: r.temperature ?? 1,
    topP: r.top_p ?? undefined,
    topK: r.top_k ?? undefined,
    minP: r.min_p ?? undefined,
    seed: r.seed ?? undefined,
    stop: stopList.filter((s) => s.length > 0),
    presencePenalty: r.presence_penalty ?? undefined,
    frequencyPenalty: r.frequency_penalty ?? undefined,
    ...(r.n && r.n > 1 ? { n: r.n } : {}),
    ...(bias ? { logitBias: bias } : {}),
  };
}

function chatMessages(r: ChatRequest): { messages: ChatMessage[]; nonTextParts: { param: string; type: string }[] } {
  const nonTextParts: { param: string; type: string }[] = [];
  const messages = r.messages.map((m, i): ChatMessage => {
    if (m.role === "user" && Array.isArray(m.content)) {
      m.content.forEach((p, j) => {
        if (p.type !== "text") nonTextParts.push({ param: `messages[${i}].content[${j}]`, type: p.type });
      });
    }
    const content = text(m.content as Parameters<typeof text>[0]);
    switch (m.role) {
      case "developer":
        return { role: "system", content };
      case "assistant": {
        const calls = m.tool_calls ?? (m.function_call ? [{ id: `call_${i}`, type: "function" as const, function: m.function_call }] : undefined);
        return { role: "assistant", content, ...(calls?.length ? { tool_calls: calls } : {}) };
      }
      case "tool":
        return { role: "tool", content, tool_call_id: m.tool_call_id };
      case "function":
        return { role: "tool", content, name: m.name };
      default:
        return { role: m.role, content };
    }
  });
  return { messages, nonTextParts };
}

function toolsOf(r: ChatRequest): { tools?: ToolDef[]; toolChoice?: ToolChoice } {
  // The deprecated `functions` / `function_call` pair is the same thing under older names.
  const tools = r.tools?.length ? r.tools : r.functions?.length ? r.functions.map((f) => ({ type: "function" as const, function: f })) : undefined;
  const choice = r.tool_choice ?? (r.function_call ? (typeof r.function_call === "string" ? r.function_call : { type: "function" as const, function: r.function_call }) : undefined);
  let toolChoice: ToolChoice | undefined;
  if (choice === undefined || choice === null) toolChoice = tools ? "auto" : undefined;
  else if (typeof choice === "string") toolChoice = choice;
  else if (choice.type === "function") toolChoice = { name: choice.function.name };
  else toolChoice = choice.allowed_tools.mode;
  if (typeof toolChoice === "object") {
    const wanted = toolChoice.name;
    if (!tools?.some((t) => t.function.name === wanted)) {
      throw invalidRequest(`Invalid value for 'tool_choice': the function '${wanted}' is not among 'tools'${tools ? ` (${tools.map((t) => t.function.name).join(", ")})` : " (none given)"}.`, "tool_choice", "invalid_value");
    }
  }
  if (toolChoice === "required" && !tools) {
    throw invalidRequest(`Invalid value for 'tool_choice': 'required' needs at least one tool in 'tools'.`, "tool_choice", "invalid_value");
  }
  if (!tools || toolChoice === "none") return {};
  return { tools, toolChoice };
}

/** Engine-only fields: accepted at their defaults anywhere, otherwise only engines that implement them answer. */
function engineOnlyFields(r: ChatRequest): string[] {
  const out: string[] = [];
  if (r.audio) out.push("audio");
  if (r.modalities?.includes("audio")) out.push("modalities");
  if (r.web_search_options) out.push("web_search_options");
  if (r.verbosity && r.verbosity !== "medium") out.push("verbosity");
  return out;
}

/**
 * Validates a parsed JSON body for an endpoint and normalizes it. Throws ApiError (HTTP 400) naming
 * the field that is wrong. Used by the client for apps and by the worker as its allow-list.
 */
export function parseGenerationRequest(endpoint: GenerationEndpoint, body: unknown): GenerationRequest {
  requireObject(body);
  // Checked before the schema: a huge value (1e30) should hear about this network's limit, not JavaScript's.
  for (const param of ["max_completion_tokens", "max_tokens"]) {
    const v = body[param];
    if (typeof v === "number" && Number.isInteger(v) && v > MAX_TOKENS_LIMIT) maxTokensOf(v, param);
  }
  if (endpoint === "chat") {
    const parsed = chatRequestSchema.safeParse(body);
    if (!parsed.success) throw zodToApiError(parsed.error, body);
    const r = parsed.data;
    const param = r.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens";
    const { messages, nonTextParts } = chatMessages(r);
    if (r.top_logprobs != null && r.top_logprobs > 0 && r.logprobs !== true) {
      throw invalidRequest(`Invalid value for 'top_logprobs': it needs 'logprobs' set to true.`, "top_logprobs", "invalid_value");
    }
    const format = r.response_format && r.response_format.type !== "text" ? r.response_format : undefined;
    const engineOnly = engineOnlyFields(r);
    return {
      endpoint,
      ...sharedFields(r),
      maxTokens: maxTokensOf(r.max_completion_tokens ?? r.max_tokens, param),
      messages,
      ...(nonTextParts.length ? { nonTextParts } : {}),
      ...(engineOnly.length ? { engineOnly } : {}),
      ...(r.logprobs ? { logprobs: { top: r.top_logprobs ?? 0 } } : {}),
      ...toolsOf(r),
      ...(format ? { responseFormat: format } : {}),
      body: r,
    };
  }
  const parsed = completionRequestSchema.safeParse(body);
  if (!parsed.success) throw zodToApiError(parsed.error, body);
  const r = parsed.data;
  if (Array.isArray(r.prompt) && r.prompt.length > 1 && (typeof r.prompt[0] === "string" || Array.isArray(r.prompt[0]))) {
    // Several prompts are several answers (choices), each up to max_tokens: counted like n.
    if (r.prompt.length * (r.n ?? 1) > MAX_CHOICES) {
      throw invalidRequest(`Invalid 'prompt': ${r.prompt.length} prompts × n=${r.n ?? 1} asks for more than ${MAX_CHOICES} answers in one request. Send fewer prompts per request.`, "prompt", "array_above_max_length");
    }
  }
  if (r.best_of != null && r.best_of < (r.n ?? 1)) {
    throw invalidRequest(`Invalid value for 'best_of': it must be at least 'n' (${r.n ?? 1}).`, "best_of", "invalid_value");
  }
  const prompts = promptsOf(r.prompt);
  const choices = prompts.length * (r.n ?? 1);
  const engineOnly = completionEngineOnly(r);
  return {
    endpoint,
    ...sharedFields(r),
    ...(choices > 1 ? { n: choices } : {}),
    maxTokens: maxTokensOf(r.max_tokens, "max_tokens"),
    prompt: typeof prompts[0] === "string" ? prompts[0] : "",
    ...(r.logprobs != null ? { logprobs: { top: r.logprobs } } : {}),
    ...(engineOnly.length ? { engineOnly } : {}),
    body: r,
  };
}

/** The prompts of a completions request: strings, or token id arrays (one prompt each). */
function promptsOf(p: CompletionRequest["prompt"]): (string | number[])[] {
  if (typeof p === "string") return [p];
  if (p.length === 0) return [];
  if (typeof p[0] === "number") return [p as number[]];
  return p as (string | number[])[];
}

/** Completions fields only a remote engine implements (the embedded one refuses them when not at their defaults). */
function completionEngineOnly(r: CompletionRequest): string[] {
  const out: string[] = [];
  const prompts = promptsOf(r.prompt);
  if (prompts.length > 1) out.push("prompt");
  if (prompts.some((p) => typeof p !== "string")) out.push("prompt");
  if (r.echo) out.push("echo");
  if (r.suffix) out.push("suffix");
  if (r.best_of != null && r.best_of > (r.n ?? 1)) out.push("best_of");
  return [...new Set(out)];
}

/** Validates an embeddings request body. */
export function parseEmbeddingRequest(body: unknown): EmbeddingRequest {
  requireObject(body);
  const parsed = embeddingRequestSchema.safeParse(body);
  if (!parsed.success) throw zodToApiError(parsed.error, body);
  const r = parsed.data;
  const input: string[] | number[][] = typeof r.input === "string" ? [r.input] : typeof r.input[0] === "number" ? [r.input as number[]] : (r.input as string[] | number[][]);
  if (input.some((s) => typeof s === "string" && s.length === 0)) {
    throw invalidRequest(`Invalid 'input': an input is an empty string; every input needs some text.`, "input", "invalid_value");
  }
  return { model: r.model, input, ...(r.dimensions != null ? { dimensions: r.dimensions } : {}), encodingFormat: r.encoding_format ?? "float", body: r };
}

/** Whether the app asked for the usage chunk at the end of a stream. */
export function wantsStreamUsage(body: { stream_options?: { include_usage?: boolean } | null }): boolean {
  return body.stream_options?.include_usage === true;
}

/** Fields of OpenAI's POST /v1/audio/transcriptions form (array fields are sent as `name[]`). */
const TRANSCRIPTION_FIELDS = new Set(["file", "model", "language", "prompt", "response_format", "stream", "temperature", "chunking_strategy", "include", "include[]", "timestamp_granularities", "timestamp_granularities[]", "known_speaker_names", "known_speaker_names[]", "known_speaker_references", "known_speaker_references[]"]);
const TRANSCRIPTION_FORMATS = ["json", "text", "srt", "verbose_json", "vtt", "diarized_json"] as const;

/** An audio transcription request (multipart): the form travels sealed as it came; these are what routing needs. */
export interface TranscriptionRequest {
  model: string;
  /** How the engine answers: JSON (json, verbose_json, diarized_json) or text (text, srt, vtt). */
  responseFormat: (typeof TRANSCRIPTION_FORMATS)[number];
}

/** Validates the fields of a transcription form (parts from src/util/multipart.ts). */
export function parseTranscriptionRequest(parts: readonly { name: string; filename?: string; data: Buffer }[]): TranscriptionRequest {
  const field = (name: string) => parts.find((p) => p.name === name)?.data.toString("utf8");
  for (const p of parts) {
    if (!TRANSCRIPTION_FIELDS.has(p.name)) throw invalidRequest(`Unrecognized request argument supplied: ${p.name}. Check the spelling against the OpenAI API reference.`, p.name, "unknown_parameter");
  }
  const file = parts.find((p) => p.name === "file");
  if (!file || file.filename === undefined) throw invalidRequest("Missing required parameter: 'file' (the audio, sent as a file field).", "file", "missing_required_parameter");
  if (file.data.length === 0) throw invalidRequest("Invalid 'file': the audio file is empty.", "file", "invalid_value");
  const model = field("model");
  if (!model) throw invalidRequest("Missing required parameter: 'model'.", "model", "missing_required_parameter");
  if (model.length > 256) throw invalidRequest("Invalid 'model': string too long. Expected at most 256 characters.", "model", "string_above_max_length");
  const format = field("response_format") ?? "json";
  if (!(TRANSCRIPTION_FORMATS as readonly string[]).includes(format)) {
    throw invalidRequest(`Invalid value for 'response_format': ${JSON.stringify(format)}. Supported values are: ${TRANSCRIPTION_FORMATS.map((f) => `"${f}"`).join(", ")}.`, "response_format", "invalid_value");
  }
  const stream = field("stream");
  if (stream !== undefined && stream !== "false") {
    throw unsupportedParameter("stream", "is not available for transcriptions yet: the whole transcript comes back in one answer. Leave it out.");
  }
  const temperature = field("temperature");
  if (temperature !== undefined && !(Number(temperature) >= 0 && Number(temperature) <= 1)) {
    throw invalidRequest(`Invalid 'temperature': expected a number from 0 to 1, but got ${JSON.stringify(temperature)}.`, "temperature", "invalid_value");
  }
  return { model, responseFormat: format as TranscriptionRequest["responseFormat"] };
}
