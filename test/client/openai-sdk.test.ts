// The official `openai` npm SDK, unchanged, against the client API.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

let net: TestNetwork;
let sdk: OpenAI;
before(async () => {
  net = await startTestNetwork([{ model: "sdk-model", tokens: 5 }]);
  sdk = new OpenAI({ baseURL: `${net.client.url}/v1`, apiKey: "unused", maxRetries: 0 });
});
after(() => net.close());

test("models.list", async () => {
  const page = await sdk.models.list();
  assert.deepEqual(page.data.map((m) => m.id), ["sdk-model"]);
});

test("chat.completions.create, non-streaming", async () => {
  const r = await sdk.chat.completions.create({ model: "sdk-model", messages: [{ role: "user", content: "one two" }] });
  assert.equal(r.choices[0]!.message.role, "assistant");
  assert.equal(r.choices[0]!.message.content, "one0 two1 one2 two3 one4");
  assert.equal(r.usage?.completion_tokens, 5);
});

test("chat.completions.create, streaming with usage", async () => {
  const stream = await sdk.chat.completions.create({ model: "sdk-model", messages: [{ role: "user", content: "x" }], stream: true, stream_options: { include_usage: true } });
  let text = "";
  let usage;
  let finish;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish ??= chunk.choices[0]?.finish_reason ?? undefined;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, "x0 x1 x2 x3 x4");
  assert.equal(finish, "stop");
  assert.equal(usage?.total_tokens, 6);
});

test("completions.create, streaming", async () => {
  const stream = await sdk.completions.create({ model: "sdk-model", prompt: "p", max_tokens: 2, stream: true });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  assert.equal(text, "p0 p1");
});

test("errors surface as the SDK's typed errors", async () => {
  await assert.rejects(sdk.chat.completions.create({ model: "missing", messages: [{ role: "user", content: "x" }] }), (e: any) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found");
  await assert.rejects(sdk.chat.completions.create({ model: "sdk-model", messages: [] }), (e: any) => e instanceof OpenAI.BadRequestError && /at least one message/.test(e.message));
  await assert.rejects(sdk.chat.completions.create({ model: "sdk-model", messages: [{ role: "user", content: "x" }], max_tokens: 100000 }), (e: any) => e instanceof OpenAI.BadRequestError && e.param === "max_tokens");
});
