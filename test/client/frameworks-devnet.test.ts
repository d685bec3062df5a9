// The three client libraries, unchanged, against the network `npm start` runs (`cocoon devnet`: chain, proxies,
// two workers on the embedded engine — real llama.cpp with the shipped tiny model — and the client, each its own
// process, payments on). The tiny model's words are babble, so this checks formats, not content: a chat and a
// stream carry text, a forced tool call names the tool with arguments that match its schema and its result goes
// back, a JSON-schema answer parses and validates, an embedding is a vector. test/client/frameworks.test.ts runs
// the same libraries against a fake engine and checks what reached it field by field.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { z } from "zod";
import { createOpenAI } from "@ai-sdk/openai";
import { embed, generateObject, generateText, jsonSchema, streamText, tool } from "ai";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { HumanMessage, ToolMessage, type AIMessage } from "@langchain/core/messages";
import { startDevnet, type Devnet } from "../cli/devnet-process.js";

const MODEL = "kjv-char-llama";
const weatherParams = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false } as const;
const citySchema = z.object({ name: z.string(), population: z.number().int() });

let devnet: Devnet;
let baseURL: string;
before(async () => {
  devnet = await startDevnet();
  baseURL = devnet.api;
});
after(async () => {
  devnet.proc.kill("SIGINT");
  await devnet.exit;
});

describe("official openai SDK against the devnet", () => {
  let sdk: OpenAI;
  before(() => {
    sdk = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
  });

  test("chat, stream, forced tool call round trip, JSON schema, embeddings", async () => {
    const r = await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "And God said" }], max_tokens: 12, logprobs: false, store: false, metadata: {}, tools: [], parallel_tool_calls: true });
    assert.equal(typeof r.choices[0]!.message.content, "string");
    assert.ok(r.usage!.completion_tokens > 0);
    let text = "";
    for await (const c of await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "In the beginning" }], max_tokens: 12, stream: true })) text += c.choices[0]?.delta?.content ?? "";
    assert.ok(text.length > 0);

    const tools = [{ type: "function" as const, function: { name: "get_weather", description: "weather of a city", parameters: weatherParams } }];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "Weather in Paris?" }];
    const first = await sdk.chat.completions.create({ model: MODEL, messages, tools, tool_choice: { type: "function", function: { name: "get_weather" } }, max_tokens: 100 });
    assert.equal(first.choices[0]!.finish_reason, "tool_calls");
    const call = first.choices[0]!.message.tool_calls![0]!;
    assert.ok(call.type === "function" && call.function.name === "get_weather");
    assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
    const second = await sdk.chat.completions.create({ model: MODEL, tools, max_tokens: 12, messages: [...messages, first.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: "sunny" }] });
    assert.equal(typeof second.choices[0]!.message.content, "string");

    const j = await sdk.chat.completions.create({
      model: MODEL,
      max_tokens: 100,
      messages: [{ role: "user", content: "a city" }],
      response_format: { type: "json_schema", json_schema: { name: "city", strict: true, schema: z.toJSONSchema(citySchema) as Record<string, unknown> } },
    });
    citySchema.parse(JSON.parse(j.choices[0]!.message.content!));

    const e = await sdk.embeddings.create({ model: MODEL, input: ["alpha beta", "gamma"] });
    assert.equal(e.data.length, 2);
    assert.ok(e.data[0]!.embedding.length > 0 && e.data[0]!.embedding.every(Number.isFinite));
    assert.ok(e.usage.prompt_tokens > 0);
  });
});

describe("Vercel AI SDK against the devnet", () => {
  let provider: ReturnType<typeof createOpenAI>;
  before(() => {
    provider = createOpenAI({ baseURL, apiKey: "unused" });
  });

  test("generateText, streamText, a tool the SDK runs, generateObject, embed", async () => {
    const r = await generateText({ model: provider.chat(MODEL), prompt: "And God said", maxOutputTokens: 12, maxRetries: 0 });
    assert.ok(r.usage.outputTokens! > 0);
    const s = streamText({ model: provider.chat(MODEL), prompt: "In the beginning", maxOutputTokens: 12, maxRetries: 0 });
    let text = "";
    for await (const t of s.textStream) text += t;
    assert.ok(text.length > 0);

    const seen: string[] = [];
    const t = await generateText({
      model: provider.chat(MODEL),
      prompt: "Weather in Oslo?",
      maxOutputTokens: 100,
      maxRetries: 0,
      tools: { get_weather: tool({ description: "weather of a city", inputSchema: jsonSchema<{ city: string }>(weatherParams), execute: async ({ city }) => (seen.push(city), `cloudy in ${city}`) }) },
      // The first step must call the tool (the tiny model would rarely choose to); the second answers in text.
      prepareStep: ({ stepNumber }) => (stepNumber === 0 ? { toolChoice: { type: "tool", toolName: "get_weather" } } : { toolChoice: "none" }),
      stopWhen: ({ steps }) => steps.length >= 2,
    });
    assert.equal(seen.length, 1);
    assert.equal(typeof seen[0], "string");
    assert.equal(t.steps[0]!.finishReason, "tool-calls");
    assert.equal(t.steps.length, 2);

    const o = await generateObject({ model: provider.chat(MODEL), prompt: "a city", maxOutputTokens: 100, maxRetries: 0, schema: citySchema });
    citySchema.parse(o.object);

    const e = await embed({ model: provider.textEmbeddingModel(MODEL), value: "alpha beta", maxRetries: 0 });
    assert.ok(e.embedding.length > 0);
  });
});

describe("LangChain.js against the devnet", () => {
  test("invoke, stream, bindTools round trip, withStructuredOutput, embeddings", async () => {
    const chat = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL }, maxRetries: 0, maxTokens: 12 });
    const r = await chat.invoke("And God said");
    assert.equal(typeof r.content, "string");
    let text = "";
    for await (const c of await chat.stream("In the beginning")) text += c.content as string;
    assert.ok(text.length > 0);

    const long = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL }, maxRetries: 0, maxTokens: 100 });
    const withTools = long.bindTools([{ type: "function", function: { name: "get_weather", description: "weather of a city", parameters: weatherParams } }], { tool_choice: "get_weather" });
    const ask = new HumanMessage("Weather in Rome?");
    const first = (await withTools.invoke([ask])) as AIMessage;
    assert.equal(first.tool_calls?.[0]?.name, "get_weather");
    assert.equal(typeof first.tool_calls![0]!.args.city, "string");
    const second = await chat.invoke([ask, first, new ToolMessage({ tool_call_id: first.tool_calls![0]!.id!, content: "warm" })]);
    assert.equal(typeof second.content, "string");

    citySchema.parse(await long.withStructuredOutput(citySchema, { method: "jsonSchema" }).invoke("a city"));

    const e = new OpenAIEmbeddings({ model: MODEL, apiKey: "unused", configuration: { baseURL }, maxRetries: 0 });
    const [a] = await e.embedDocuments(["alpha"]);
    assert.ok(a!.length > 0);
  });
});
