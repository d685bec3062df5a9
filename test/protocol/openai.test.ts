// Request validation survives anything an app (or a peer) sends: a request, or one OpenAI-style 400 that names the
// field at fault; never a crash. Structured answer deltas round-trip through the chunk format.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { ApiError, parseEmbeddingRequest, parseGenerationRequest, type GenerationEndpoint } from "../../src/protocol/openai.js";
import { decodeAnswerChunk, encodeAnswerChunk, type AnswerDelta } from "../../src/protocol/answer-chunk.js";

const valid = {
  chat: { model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 5 },
  completions: { model: "m", prompt: "hi", max_tokens: 5 },
};

function outcome(endpoint: GenerationEndpoint | "embeddings", body: unknown): "ok" | ApiError {
  try {
    if (endpoint === "embeddings") parseEmbeddingRequest(body);
    else parseGenerationRequest(endpoint, body);
    return "ok";
  } catch (e) {
    assert.ok(e instanceof ApiError, `only ApiError escapes, got ${String(e)}`);
    assert.equal(e.status, 400);
    assert.equal(e.type, "invalid_request_error");
    assert.ok(e.code && e.message.length > 10, e.message);
    return e;
  }
}

test("any JSON value: a request or a clear 400, for every endpoint", () => {
  fc.assert(
    fc.property(fc.constantFrom("chat", "completions", "embeddings") as fc.Arbitrary<GenerationEndpoint | "embeddings">, fc.jsonValue(), (endpoint, body) => {
      outcome(endpoint, body);
    }),
    { numRuns: 1000 },
  );
});

test("one field of a valid request replaced by anything: accepted, or refused naming that field", () => {
  const fields = ["model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n", "stop", "stream", "stream_options", "logprobs", "top_logprobs", "tools", "tool_choice", "response_format", "logit_bias", "metadata", "seed", "user", "reasoning_effort", "service_tier", "parallel_tool_calls", "store"];
  fc.assert(
    fc.property(fc.constantFrom(...fields), fc.jsonValue(), (field, value) => {
      const r = outcome("chat", { ...valid.chat, [field]: value });
      if (r !== "ok") assert.ok(r.param?.startsWith(field) || (field === "top_logprobs" && r.param === "top_logprobs") || (field === "logprobs" && r.param === "top_logprobs"), `${field}=${JSON.stringify(value)} -> ${r.param}: ${r.message}`);
    }),
    { numRuns: 1500 },
  );
});

test("the network's max_tokens limit is what an oversized request hears about", () => {
  for (const v of [8193, 1e30, Number.MAX_SAFE_INTEGER]) {
    const r = outcome("chat", { ...valid.chat, max_tokens: v });
    assert.ok(r !== "ok");
    assert.match(r.message, /<= 8192/);
    assert.equal(r.code, "integer_above_max_value");
  }
  assert.equal(outcome("chat", { ...valid.chat, max_tokens: 8192 }), "ok", "the limit itself is accepted");
});

test("normalization: roles, tool turns, several prompts and default values", () => {
  const r = parseGenerationRequest("chat", {
    model: "m",
    messages: [
      { role: "developer", content: "sys" },
      { role: "assistant", content: null, tool_calls: [{ id: "a", type: "function", function: { name: "f", arguments: "{}" } }] },
      { role: "tool", tool_call_id: "a", content: [{ type: "text", text: "res" }] },
    ],
    tools: [{ type: "function", function: { name: "f" } }],
    logit_bias: {},
    n: 1,
    response_format: { type: "text" },
  });
  assert.deepEqual(r.messages!.map((m) => m.role), ["system", "assistant", "tool"]);
  assert.equal(r.messages![2]!.content, "res");
  assert.equal(r.toolChoice, "auto");
  assert.equal(r.logitBias, undefined, "an empty bias is no bias");
  assert.equal(r.n, undefined);
  assert.equal(r.responseFormat, undefined, "text is the default format");
  const c = parseGenerationRequest("completions", { model: "m", prompt: ["a", "b"], n: 2 });
  assert.equal(c.n, 4, "two prompts, two answers each");
  assert.deepEqual(c.engineOnly, ["prompt"]);
  assert.throws(() => parseGenerationRequest("completions", { model: "m", prompt: Array(5).fill("p"), n: 2 }), /more than 8 answers/);
});

const delta: fc.Arbitrary<AnswerDelta> = fc.oneof(
  fc.string(),
  fc.record(
    {
      index: fc.nat(8),
      content: fc.string(),
      refusal: fc.string(),
      tool_calls: fc.array(fc.record({ index: fc.nat(4), id: fc.string({ maxLength: 20 }), type: fc.constant("function" as const), function: fc.record({ name: fc.string({ maxLength: 20 }), arguments: fc.string() }, { requiredKeys: [] }) }, { requiredKeys: ["index"] }), { maxLength: 3 }),
      finish_reason: fc.constantFrom("stop" as const, "length" as const, "tool_calls" as const),
      embedding: fc.oneof(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 4 }), fc.base64String()),
    },
    { requiredKeys: [] },
  ),
);

test("structured deltas round-trip through answer chunks", () => {
  fc.assert(
    fc.property(fc.array(delta, { maxLength: 8 }), (deltas) => {
      assert.deepEqual(decodeAnswerChunk(encodeAnswerChunk(deltas)), JSON.parse(JSON.stringify(deltas)));
    }),
  );
  assert.throws(() => decodeAnswerChunk(Buffer.from('{"deltas":[{"content":"x","extra":1}]}')), /malformed chunk/);
  assert.throws(() => decodeAnswerChunk(Buffer.from('{"deltas":[{"tool_calls":[{"index":-1}]}]}')), /malformed chunk/);
});
