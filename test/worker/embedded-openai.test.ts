// The embedded engine (real llama.cpp, the shipped tiny model) behind a whole sealed network, driven by the official
// openai SDK: JSON answers and tool calls come out under a grammar so they always parse and validate, logprobs are
// the engine's own, logit_bias bans a token, embeddings come from the same model, and what it cannot do is refused
// by name (never a default value).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI, { toFile } from "openai";
import { EmbeddedBackend } from "../../src/worker/backends/embedded.js";
import { OPEN_STRING_MAX } from "../../src/worker/backends/structured.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

const MODEL = "kjv-char-llama";
let net: TestNetwork;
let sdk: OpenAI;
before(async () => {
  net = await startTestNetwork([], { backends: [await EmbeddedBackend.load({ capacity: 2 })] });
  sdk = new OpenAI({ baseURL: `${net.client.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => net.close());

const user = (content: string) => [{ role: "user" as const, content }];

test("json_schema answers parse and validate, at any temperature", async () => {
  const schema = { type: "object", properties: { city: { type: "string" }, days: { type: "integer" }, sunny: { type: "boolean" } }, required: ["city", "days", "sunny"], additionalProperties: false };
  for (const [temperature, seed] of [[0, 1], [1, 2], [1.5, 3]] as const) {
    const r = await sdk.chat.completions.create({ model: MODEL, messages: user("Where shall we go?"), temperature, seed, max_tokens: 200, response_format: { type: "json_schema", json_schema: { name: "trip", strict: true, schema } } });
    assert.equal(r.choices[0]!.finish_reason, "stop");
    const v = JSON.parse(r.choices[0]!.message.content!);
    assert.deepEqual(Object.keys(v).sort(), ["city", "days", "sunny"]);
    assert.equal(typeof v.city, "string");
    assert.ok(v.city.length <= OPEN_STRING_MAX);
    assert.ok(Number.isInteger(v.days));
    assert.equal(typeof v.sunny, "boolean");
  }
});

test("json_object answers are a JSON object, streamed too", async () => {
  const stream = await sdk.chat.completions.create({ model: MODEL, messages: user("Answer in JSON"), temperature: 1, seed: 9, max_tokens: 200, response_format: { type: "json_object" }, stream: true });
  let text = "";
  let finish;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? "";
    finish ??= c.choices[0]?.finish_reason ?? undefined;
  }
  assert.equal(finish, "stop");
  const v = JSON.parse(text);
  assert.ok(v && typeof v === "object" && !Array.isArray(v));
});

test("tool calls: the named tool with arguments that match its schema, whole and streamed; the result goes back", async () => {
  const tools = [
    { type: "function" as const, function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } }, required: ["city", "unit"] } } },
    { type: "function" as const, function: { name: "get_time", parameters: { type: "object", properties: { zone: { type: "string" } } } } },
  ];
  const r = await sdk.chat.completions.create({ model: MODEL, messages: user("Weather in Paris?"), tools, tool_choice: { type: "function", function: { name: "get_weather" } }, max_tokens: 200, temperature: 0 });
  const choice = r.choices[0]!;
  assert.equal(choice.finish_reason, "tool_calls");
  assert.equal(choice.message.content, null);
  const call = choice.message.tool_calls![0]!;
  assert.ok(call.type === "function");
  assert.equal(call.function.name, "get_weather");
  assert.match(call.id, /^call_[0-9a-f]{24}$/);
  const args = JSON.parse(call.function.arguments);
  assert.equal(typeof args.city, "string");
  assert.ok(args.unit === "c" || args.unit === "f");
  const streamed = await sdk.chat.completions.stream({ model: MODEL, messages: user("What time is it?"), tools, tool_choice: "required", max_tokens: 200, temperature: 0 }).finalChatCompletion();
  const sc = streamed.choices[0]!.message.tool_calls![0]!;
  assert.ok(sc.type === "function" && ["get_weather", "get_time"].includes(sc.function.name));
  JSON.parse(sc.function.arguments);
  // The round trip: the tool's result is a turn of the conversation; with "auto" the model may answer in words.
  const second = await sdk.chat.completions.create({ model: MODEL, tools, max_tokens: 150, temperature: 0, messages: [...user("Weather?"), choice.message, { role: "tool", tool_call_id: call.id, content: "rain" }] });
  const m = second.choices[0]!;
  assert.ok(m.finish_reason === "tool_calls" ? m.message.tool_calls!.length === 1 : typeof m.message.content === "string", JSON.stringify(m));
});

test("logprobs are the engine's: one per answer token, the chosen token first among the top ones at temperature 0", async () => {
  const r = await sdk.chat.completions.create({ model: MODEL, messages: user("And God said"), temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3 });
  const lp = r.choices[0]!.logprobs!.content!;
  assert.equal(lp.length, r.usage!.completion_tokens);
  assert.equal(lp.map((t) => t.token).join(""), r.choices[0]!.message.content);
  for (const t of lp) {
    assert.ok(t.logprob <= 0);
    assert.equal(t.top_logprobs.length, 3);
    assert.equal(t.top_logprobs[0]!.token, t.token, "greedy picks the most likely token");
    assert.ok(t.top_logprobs[0]!.logprob >= t.top_logprobs[1]!.logprob);
  }
});

test("logit_bias -100 bans a token the model would otherwise pick", async () => {
  const prompt = "In the beginning";
  const plain = await sdk.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 12, logprobs: 0 });
  const text = plain.choices[0]!.text;
  const banned = "e";
  assert.ok(text.includes(banned), `the greedy answer uses '${banned}': ${JSON.stringify(text)}`);
  // The token id of "e" in this character-level model, from a tokenization the engine did itself.
  const backend = net.workers[0] as unknown as { opts: { backend: EmbeddedBackend } };
  const id = backend.opts.backend.tokenizePrompt({ endpoint: "completions", model: MODEL, prompt: banned, maxTokens: 1, temperature: 0, stop: [] }).at(-1)!;
  const biased = await sdk.completions.create({ model: MODEL, prompt, temperature: 0, max_tokens: 12, logit_bias: { [String(id)]: -100 } });
  assert.ok(!biased.choices[0]!.text.includes(banned), JSON.stringify(biased.choices[0]!.text));
});

test("embeddings from the same model: one vector per input, deterministic, prompt tokens billed", async () => {
  const r = await sdk.embeddings.create({ model: MODEL, input: ["In the beginning", "God"], encoding_format: "float" });
  assert.equal(r.data.length, 2);
  const dims = r.data[0]!.embedding.length;
  assert.ok(dims > 0);
  assert.notDeepEqual(r.data[0]!.embedding, r.data[1]!.embedding);
  assert.ok(r.usage.prompt_tokens >= "In the beginning".length + "God".length);
  const again = await sdk.embeddings.create({ model: MODEL, input: "God" });
  const close = again.data[0]!.embedding.every((x, i) => Math.abs(x - r.data[1]!.embedding[i]!) < 1e-4);
  assert.ok(close, "the same input gives the same vector");
  const small = await sdk.embeddings.create({ model: MODEL, input: "God", dimensions: 8, encoding_format: "float" });
  assert.equal(small.data[0]!.embedding.length, 8);
  assert.ok(Math.abs(Math.hypot(...small.data[0]!.embedding) - 1) < 1e-4);
  await assert.rejects(sdk.embeddings.create({ model: MODEL, input: "God", dimensions: dims + 1 }), (e: any) => e.status === 400 && e.code === "unsupported_parameter" && e.param === "dimensions");
});

test("what the embedded engine cannot do is refused by name; defaults never are", async () => {
  const refused: [Record<string, unknown>, string][] = [
    [{ n: 2 }, "n"],
    [{ messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] }] }, "messages[0].content[0]"],
    [{ modalities: ["text", "audio"], audio: { voice: "alloy", format: "wav" } }, "audio"],
    [{ web_search_options: {} }, "web_search_options"],
  ];
  for (const [extra, param] of refused) {
    await assert.rejects(
      sdk.chat.completions.create({ model: MODEL, messages: user("x"), max_tokens: 2, ...extra } as never),
      (e: any) => e.status === 400 && e.code === "unsupported_parameter" && e.param === param && /--backend openai/.test(e.message),
      JSON.stringify(extra),
    );
  }
  await assert.rejects(sdk.completions.create({ model: MODEL, prompt: ["a", "b"], max_tokens: 2 }), (e: any) => e.code === "unsupported_parameter" && e.param === "prompt");
  await assert.rejects(sdk.audio.transcriptions.create({ model: MODEL, file: await toFile(Buffer.alloc(100), "a.wav") }), (e: any) => e.status === 400 && e.code === "unsupported_parameter" && /serves no audio transcriptions/.test(e.message));
  const ok = await sdk.chat.completions.create({ model: MODEL, messages: user("x"), max_tokens: 2, n: 1, logprobs: false, tools: [], parallel_tool_calls: false, store: false, metadata: {}, logit_bias: {}, response_format: { type: "text" }, reasoning_effort: "low", service_tier: "auto", modalities: ["text"] });
  assert.equal(ok.usage!.completion_tokens, 2);
});

test("a prompt longer than the context is context_length_exceeded, and is not retried on other workers", async () => {
  await assert.rejects(sdk.chat.completions.create({ model: MODEL, messages: user("In the beginning ".repeat(40)), max_tokens: 2 }), (e: any) => e.status === 400 && e.code === "context_length_exceeded" && e.param === "messages" && /maximum context length is 256 tokens/.test(e.message));
});
