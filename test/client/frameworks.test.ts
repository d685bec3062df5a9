// Real clients, unchanged, against a whole network (proxy, a worker on the fake OpenAI-compatible engine, client;
// requests sealed to the worker): the official `openai` SDK, the Vercel AI SDK and LangChain.js each run a chat, a
// stream, a tool-call round trip, a JSON-schema answer and an embedding. What the engine received is checked too:
// the frameworks' fields reach it unchanged through the sealed path.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { z } from "zod";
import { createOpenAI } from "@ai-sdk/openai";
import { embed, generateObject, generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { HumanMessage, ToolMessage, type AIMessage } from "@langchain/core/messages";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

const MODEL = "fw-model";
let net: TestNetwork;
let baseURL: string;
before(async () => {
  net = await startTestNetwork([{ model: MODEL, tokens: 4 }]);
  baseURL = `${net.client.url}/v1`;
});
after(() => net.close());

/** The last body the engine received for an endpoint (messages for chat, input for embeddings). */
function lastBody(key: "messages" | "prompt" | "input"): Record<string, any> {
  const b = [...net.upstreams[0]!.bodies].reverse().find((x) => key in x);
  assert.ok(b, `the engine received a ${key} request`);
  return b;
}

const weatherParams = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false } as const;

describe("official openai SDK", () => {
  let sdk: OpenAI;
  before(() => {
    sdk = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
  });

  test("chat and stream", async () => {
    const r = await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "red blue" }], temperature: 0, n: 1, logprobs: false, store: false, metadata: {}, parallel_tool_calls: true, service_tier: "auto" });
    assert.equal(r.choices[0]!.message.content, "red0 blue1 red2 blue3");
    assert.ok(r.id.startsWith("chatcmpl-"));
    let text = "";
    for await (const c of await sdk.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "x" }], stream: true })) text += c.choices[0]?.delta?.content ?? "";
    assert.equal(text, "x0 x1 x2 x3");
  });

  test("tool call round trip, streamed and not", async () => {
    const tools = [{ type: "function" as const, function: { name: "get_weather", description: "weather of a city", parameters: weatherParams } }];
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "weather in Paris" }];
    const first = await sdk.chat.completions.create({ model: MODEL, messages, tools, tool_choice: "auto" });
    const call = first.choices[0]!.message.tool_calls?.[0];
    assert.equal(first.choices[0]!.finish_reason, "tool_calls");
    assert.ok(call && call.type === "function");
    assert.equal(call.function.name, "get_weather");
    assert.deepEqual(JSON.parse(call.function.arguments), { city: "Paris" });
    assert.equal(first.choices[0]!.message.content, null);
    // The stream assembles to the same call (the SDK's helper merges the fragments).
    const stream = sdk.chat.completions.stream({ model: MODEL, messages, tools });
    const streamed = await stream.finalChatCompletion();
    assert.equal(streamed.choices[0]!.message.tool_calls?.[0]?.type === "function" && streamed.choices[0]!.message.tool_calls[0].function.arguments, call.function.arguments);
    assert.equal(streamed.choices[0]!.finish_reason, "tool_calls");
    // The result goes back as a tool message; the engine answers in text.
    const second = await sdk.chat.completions.create({
      model: MODEL,
      tools,
      messages: [...messages, first.choices[0]!.message, { role: "tool", tool_call_id: call.id, content: "sunny" }],
    });
    assert.equal(second.choices[0]!.finish_reason, "stop");
    assert.match(second.choices[0]!.message.content ?? "", /sunny/);
    const sent = lastBody("messages");
    assert.equal(sent.messages[2].role, "tool");
    assert.equal(sent.messages[2].tool_call_id, call.id);
    assert.equal(sent.messages[1].tool_calls[0].function.name, "get_weather");
  });

  test("JSON-schema answer", async () => {
    const r = await sdk.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "a city" }],
      response_format: { type: "json_schema", json_schema: { name: "city", strict: true, schema: { type: "object", properties: { name: { type: "string" }, population: { type: "integer" } }, required: ["name", "population"], additionalProperties: false } } },
    });
    assert.deepEqual(JSON.parse(r.choices[0]!.message.content!), { name: "value.name", population: 42 });
    assert.equal(lastBody("messages").response_format.json_schema.strict, true);
  });

  test("embeddings, float and base64 (the SDK's default wire format)", async () => {
    const floats = await sdk.embeddings.create({ model: MODEL, input: ["alpha beta", "gamma"], encoding_format: "float" });
    assert.equal(floats.data.length, 2);
    assert.equal(floats.data[1]!.index, 1);
    assert.equal(floats.data[0]!.embedding.length, 8);
    assert.equal(floats.usage.prompt_tokens, 3);
    // Without encoding_format the SDK asks for base64 and decodes it itself: same vectors (float32).
    const decoded = await sdk.embeddings.create({ model: MODEL, input: ["alpha beta", "gamma"] });
    assert.deepEqual(decoded.data.map((d) => d.embedding), floats.data.map((d) => d.embedding));
    const norm = Math.hypot(...floats.data[0]!.embedding);
    assert.ok(Math.abs(norm - 1) < 1e-5, `unit vector, norm ${norm}`);
  });
});

describe("Vercel AI SDK (ai + @ai-sdk/openai)", () => {
  let provider: ReturnType<typeof createOpenAI>;
  before(() => {
    provider = createOpenAI({ baseURL, apiKey: "unused" });
  });

  test("generateText and streamText", async () => {
    const r = await generateText({ model: provider.chat(MODEL), prompt: "one two", maxRetries: 0 });
    assert.equal(r.text, "one0 two1 one2 two3");
    assert.equal(r.usage.outputTokens, 4);
    const s = streamText({ model: provider.chat(MODEL), prompt: "z", maxRetries: 0 });
    let text = "";
    for await (const t of s.textStream) text += t;
    assert.equal(text, "z0 z1 z2 z3");
    assert.equal((await s.usage).outputTokens, 4);
  });

  test("tool call round trip (the SDK runs the tool and sends the result back)", async () => {
    const seen: string[] = [];
    const r = await generateText({
      model: provider.chat(MODEL),
      prompt: "weather in Oslo",
      maxRetries: 0,
      tools: {
        get_weather: tool({
          description: "weather of a city",
          inputSchema: jsonSchema<{ city: string }>(weatherParams),
          execute: async ({ city }) => {
            seen.push(city);
            return `cloudy in ${city}`;
          },
        }),
      },
      stopWhen: stepCountIs(3),
    });
    assert.deepEqual(seen, ["Oslo"]);
    assert.equal(r.steps.length, 2);
    assert.equal(r.steps[0]!.finishReason, "tool-calls");
    assert.match(r.text, /cloudy/);
    assert.equal(lastBody("messages").messages.at(-1).role, "tool");
  });

  test("generateObject with a schema", async () => {
    const r = await generateObject({ model: provider.chat(MODEL), prompt: "a city", maxRetries: 0, schema: z.object({ name: z.string(), population: z.number() }) });
    assert.deepEqual(r.object, { name: "value.name", population: 42 });
    assert.equal(lastBody("messages").response_format.type, "json_schema");
  });

  test("embed", async () => {
    const r = await embed({ model: provider.textEmbeddingModel(MODEL), value: "alpha beta", maxRetries: 0 });
    assert.equal(r.embedding.length, 8);
    assert.equal(r.usage.tokens, 2);
  });
});

describe("LangChain.js (@langchain/openai)", () => {
  let chat: ChatOpenAI;
  before(() => {
    chat = new ChatOpenAI({ model: MODEL, apiKey: "unused", configuration: { baseURL }, maxRetries: 0 });
  });

  test("invoke and stream", async () => {
    const r = await chat.invoke("left right");
    assert.equal(r.content, "left0 right1 left2 right3");
    let text = "";
    for await (const c of await chat.stream("q")) text += c.content as string;
    assert.equal(text, "q0 q1 q2 q3");
  });

  test("tool call round trip with bindTools", async () => {
    const withTools = chat.bindTools([{ type: "function", function: { name: "get_weather", description: "weather of a city", parameters: weatherParams } }]);
    const ask = new HumanMessage("weather in Rome");
    const first = (await withTools.invoke([ask])) as AIMessage;
    assert.equal(first.tool_calls?.length, 1);
    assert.equal(first.tool_calls![0]!.name, "get_weather");
    assert.deepEqual(first.tool_calls![0]!.args, { city: "Rome" });
    const second = await withTools.invoke([ask, first, new ToolMessage({ tool_call_id: first.tool_calls![0]!.id!, content: "warm" })]);
    assert.match(second.content as string, /warm/);
  });

  test("withStructuredOutput (JSON schema)", async () => {
    const structured = chat.withStructuredOutput(z.object({ name: z.string(), population: z.number() }), { method: "jsonSchema" });
    assert.deepEqual(await structured.invoke("a city"), { name: "value.name", population: 42 });
  });

  test("OpenAIEmbeddings", async () => {
    const e = new OpenAIEmbeddings({ model: MODEL, apiKey: "unused", configuration: { baseURL }, maxRetries: 0 });
    const [a, b] = await e.embedDocuments(["alpha", "beta gamma"]);
    assert.equal(a!.length, 8);
    assert.notDeepEqual(a, b);
    assert.deepEqual(await e.embedQuery("alpha"), a);
  });
});
