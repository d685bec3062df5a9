// What the embedded engine does with the OpenAI fields beyond plain sampling: which ones it refuses (values it
// cannot honour, never defaults), and structured output. JSON answers (response_format) and tool calls are
// produced under a JSON-schema grammar (llama.cpp's GBNF through node-llama-cpp), so the answer parses and
// validates whatever the model is; a small model may still choose poor values.
import { randomBytes } from "node:crypto";
import type { GenerationRequest, ToolDef } from "../../protocol/openai.js";
import type { ToolCallDelta } from "../../protocol/answer-chunk.js";
import { BackendError } from "./backend.js";

/**
 * Bounds for what a grammar leaves open: a string or array the schema does not bound gets these limits, so that a
 * model with a short context (the shipped one holds 256 characters) finishes its JSON instead of running out.
 */
export const OPEN_STRING_MAX = 24;
export const OPEN_ARRAY_MAX = 3;

function unsupported(param: string, why: string): BackendError {
  return new BackendError("unsupported_parameter", `Unsupported parameter: '${param}' ${why} Use a worker with --backend openai in front of an engine that supports it, or leave it out.`);
}

/** Refuses what the embedded engine cannot do at the value asked (docs/openai.md has the whole table). */
export function checkEmbeddedSupport(req: GenerationRequest): void {
  if ((req.n ?? 1) > 1) throw unsupported(req.endpoint === "completions" && req.engineOnly?.includes("prompt") ? "prompt" : "n", `asks for ${req.n} answers; the embedded engine gives one per request.`);
  if (req.engineOnly?.length) throw unsupported(req.engineOnly[0]!, "is not implemented by the embedded engine at the value asked.");
  const part = req.nonTextParts?.[0];
  if (part) throw unsupported(part.param, `holds ${part.type} content; the embedded engine reads text only.`);
}

/** A JSON schema with every open string and array bounded (see OPEN_STRING_MAX), and OpenAI-only keywords dropped. */
export function boundedSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(boundedSchema);
  if (!schema || typeof schema !== "object") return schema;
  const s = schema as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k === "properties" || k === "$defs" || k === "definitions") {
      out[k] = Object.fromEntries(Object.entries((v ?? {}) as Record<string, unknown>).map(([name, sub]) => [name, boundedSchema(sub)]));
    } else if (k === "strict" || k === "title" || k === "default" || k === "examples" || k === "$schema") {
      continue;
    } else out[k] = typeof v === "object" ? boundedSchema(v) : v;
  }
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes("string") && s.enum === undefined && s.const === undefined && s.format === undefined && s.maxLength === undefined) out.maxLength = OPEN_STRING_MAX;
  if (types.includes("array") && s.maxItems === undefined && !Array.isArray(s.prefixItems)) out.maxItems = OPEN_ARRAY_MAX;
  // An object without properties is any JSON object to OpenAI; the grammar needs its values bounded too.
  if (types.includes("object") && s.properties === undefined && s.additionalProperties === undefined) {
    out.additionalProperties = { type: ["string", "number", "boolean"], maxLength: OPEN_STRING_MAX };
    out.maxProperties = 3;
  }
  return out;
}

/** How the answer of a request is constrained, and how to read it back. */
export type StructuredPlan =
  | { kind: "json"; schema: unknown; param: "response_format" }
  | { kind: "tools"; schema: unknown; param: "tools"; tools: ToolDef[]; textAllowed: boolean };

/** The answer's grammar, if the request asks for JSON or for tool calls. */
export function structuredPlan(req: GenerationRequest): StructuredPlan | undefined {
  if (req.endpoint !== "chat") return undefined;
  if (req.tools?.length && req.toolChoice && req.toolChoice !== "none") {
    const allowed = typeof req.toolChoice === "object" ? req.tools.filter((t) => t.function.name === (req.toolChoice as { name: string }).name) : req.tools;
    const calls = allowed.map((t) => ({
      type: "object",
      properties: { name: { const: t.function.name }, arguments: boundedSchema(t.function.parameters ?? { type: "object", properties: {} }) },
    }));
    // "auto": the model may answer in text instead, as {"content": "..."}.
    const textAllowed = req.toolChoice === "auto";
    const options = textAllowed ? [...calls, { type: "object", properties: { content: { type: "string", maxLength: OPEN_STRING_MAX * 4 } } }] : calls;
    return { kind: "tools", schema: options.length === 1 ? options[0] : { oneOf: options }, param: "tools", tools: allowed, textAllowed };
  }
  const f = req.responseFormat;
  if (f?.type === "json_object") return { kind: "json", schema: boundedSchema({ type: "object" }), param: "response_format" };
  if (f?.type === "json_schema") return { kind: "json", schema: boundedSchema(f.json_schema.schema ?? { type: "object" }), param: "response_format" };
  return undefined;
}

/** A system turn that tells the model which tools it has and the shape of a call (a chat model reads it). */
export function toolsInstruction(plan: StructuredPlan & { kind: "tools" }): string {
  const list = plan.tools.map((t) => `- ${t.function.name}${t.function.description ? `: ${t.function.description}` : ""} (arguments: ${JSON.stringify(t.function.parameters ?? {})})`).join("\n");
  return `You can call these tools:\n${list}\nAnswer with JSON {"name": tool, "arguments": {...}}${plan.textAllowed ? ', or {"content": text} to answer in words' : ""}.`;
}

/** Reads a finished tools answer: tool calls, or text when the model chose to answer in words. */
export function readToolAnswer(text: string): { toolCalls: ToolCallDelta[] } | { content: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined; // cut off (max_tokens or the context ran out): the caller hands back the raw text
  }
  const o = v as { name?: unknown; arguments?: unknown; content?: unknown };
  if (typeof o.name === "string") {
    return { toolCalls: [{ index: 0, id: `call_${randomBytes(12).toString("hex")}`, type: "function", function: { name: o.name, arguments: JSON.stringify(o.arguments ?? {}) } }] };
  }
  if (typeof o.content === "string") return { content: o.content };
  return undefined;
}
