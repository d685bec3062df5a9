// The client's API as an HTTP server and as OpenAI's API: every parameter at its default is accepted, errors say
// what is wrong in OpenAI's shape and codes, fields the engine implements pass through (tools, logprobs, n,
// several prompts), and HTTP behaves (Allow, HEAD, CORS, 415, UTF-8, request ids, Retry-After, timeouts).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { ClientNode } from "../../src/client/client.js";
import { acceptAnyPeer } from "../../src/protocol/transport.js";
import { silentLogger } from "../../src/util/log.js";
import { chat, startTestNetwork, type TestNetwork } from "../helpers/network.js";

const MODEL = "surface-model";
const hi = [{ role: "user", content: "hi there" }];

let net: TestNetwork;
before(async () => {
  net = await startTestNetwork([{ model: MODEL, tokens: 3 }]);
});
after(() => net.close());

async function error(res: Response): Promise<{ status: number; code: string; param: string | null; message: string; type: string }> {
  const body = (await res.json()) as any;
  assert.ok(body.error, `an error body: ${JSON.stringify(body)}`);
  return { status: res.status, ...body.error };
}

describe("parameters", () => {
  test("every parameter the issue listed is accepted at its default value", async () => {
    const res = await chat(net.client.url, {
      model: MODEL,
      messages: hi,
      logprobs: false,
      tools: [],
      tool_choice: "none",
      parallel_tool_calls: true,
      metadata: {},
      store: false,
      top_logprobs: 0,
      response_format: { type: "text" },
      logit_bias: {},
      reasoning_effort: "medium",
      service_tier: "auto",
      n: 1,
      seed: 7,
      user: "u1",
      stop: null,
      presence_penalty: 0,
      frequency_penalty: 0,
      modalities: ["text"],
      verbosity: "medium",
      prompt_cache_key: "k",
      safety_identifier: "s",
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as any;
    assert.equal(body.choices[0].message.content, "hi0 there1 hi2");
    assert.equal(body.service_tier, "default");
    // The engine got the app's fields unchanged (the openai backend passes them through).
    const sent = net.upstreams[0]!.bodies.at(-1)!;
    assert.equal(sent.seed, 7);
    assert.equal(sent.user, "u1");
    assert.equal(sent.reasoning_effort, "medium");
    assert.deepEqual(sent.metadata, {});
    assert.equal(sent.stream, true, "the worker always streams from the engine");
  });

  test("wrong types and ranges are named, in OpenAI's words and codes", async () => {
    const cases: [Record<string, unknown>, string, string, RegExp][] = [
      [{ messages: "hi" }, "messages", "invalid_type", /expected an array, but got a string/],
      [{ messages: hi, max_tokens: "5" }, "max_tokens", "invalid_type", /expected a number, but got a string/],
      [{ messages: hi, max_tokens: 2.5 }, "max_tokens", "invalid_type", /expected an integer, but got a decimal number/],
      [{ messages: hi, max_tokens: 1e30 }, "max_tokens", "integer_above_max_value", /<= 8192/],
      [{ messages: hi, max_completion_tokens: 9000 }, "max_completion_tokens", "integer_above_max_value", /<= 8192/],
      [{ messages: hi, temperature: 2.5 }, "temperature", "decimal_above_max_value", /<= 2, but got 2.5/],
      [{ messages: hi, stop: ["a", "b", "c", "d", "e"] }, "stop", "array_above_max_length", /at most 4 items, but got 5/],
      [{ messages: [{ role: "robot", content: "x" }] }, "messages[0].role", "invalid_value", /'robot'|"robot".*'user'/],
      [{ messages: [{ role: "user" }] }, "messages[0].content", "missing_required_parameter", /Missing required parameter/],
      [{ messages: hi, response_format: { type: "xml" } }, "response_format.type", "invalid_value", /json_schema/],
      [{ messages: hi, frobnicate: 1 }, "frobnicate", "unknown_parameter", /frobnicate/],
      [{ messages: hi, tool_choice: "required" }, "tool_choice", "invalid_value", /needs at least one tool/],
      [{ messages: hi, top_logprobs: 3 }, "top_logprobs", "invalid_value", /logprobs/],
    ];
    for (const [extra, param, code, message] of cases) {
      const e = await error(await chat(net.client.url, { model: MODEL, ...extra }));
      assert.equal(e.status, 400, JSON.stringify(extra));
      assert.equal(e.type, "invalid_request_error");
      assert.equal(e.param, param, JSON.stringify(extra));
      assert.equal(e.code, code, `${JSON.stringify(extra)}: ${e.message}`);
      assert.match(e.message, message);
    }
  });

  test("tool messages, content parts and the deprecated functions fields are accepted and reach the engine", async () => {
    const res = await chat(net.client.url, {
      model: MODEL,
      messages: [
        { role: "developer", content: [{ type: "text", text: "be brief" }] },
        { role: "user", content: [{ type: "text", text: "look" }, { type: "image_url", image_url: { url: "data:image/png;base64,AA==" } }] },
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }] },
        { role: "tool", tool_call_id: "c1", content: "done" },
      ],
      functions: [{ name: "f", parameters: { type: "object", properties: {} } }],
    });
    assert.equal(res.status, 200, await res.clone().text());
    const sent = net.upstreams[0]!.bodies.at(-1)! as any;
    assert.equal(sent.messages[1].content[1].type, "image_url");
    assert.equal(sent.messages[3].tool_call_id, "c1");
  });

  test("n, several prompts and logprobs pass through, whole and streamed", async () => {
    const r = (await (await chat(net.client.url, { model: MODEL, messages: hi, n: 2, logprobs: true, top_logprobs: 2 })).json()) as any;
    assert.deepEqual(r.choices.map((c: any) => c.index), [0, 1]);
    assert.equal(r.choices[1].message.content, "hi0 there1 hi2");
    assert.equal(r.choices[0].logprobs.content[0].top_logprobs.length, 2);
    assert.equal(r.usage.completion_tokens, 6);
    const prompts = await fetch(`${net.client.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, prompt: ["a b", "c d"], logprobs: 1 }) });
    const p = (await prompts.json()) as any;
    assert.deepEqual(p.choices.map((c: any) => c.text), ["a0 b1 a2", "c0 d1 c2"]);
    assert.deepEqual(p.choices[0].logprobs.tokens, ["a0", " b1", " a2"], "the streamed logprobs merged in order");
    const streamed = await chat(net.client.url, { model: MODEL, messages: hi, n: 2, logprobs: true, stream: true });
    const events = (await streamed.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    const text = (i: number) => events.flatMap((e) => e.choices.filter((c: any) => c.index === i)).map((c: any) => c.delta.content ?? "").join("");
    assert.equal(text(0), "hi0 there1 hi2");
    assert.equal(text(1), "hi0 there1 hi2");
    const finishes = events.flatMap((e) => e.choices.filter((c: any) => c.finish_reason)).map((c: any) => [c.index, c.finish_reason]);
    assert.deepEqual(finishes, [[0, "stop"], [1, "stop"]]);
    assert.ok(events.some((e) => e.choices[0]?.logprobs?.content?.length === 1));
  });

  test("a streamed tool call arrives as tool_calls deltas: id and name first, then the arguments", async () => {
    const res = await chat(net.client.url, { model: MODEL, messages: [{ role: "user", content: "in Lima" }], stream: true, tools: [{ type: "function", function: { name: "where", parameters: { type: "object", properties: { city: { type: "string" } } } } }] });
    const events = (await res.text()).split("\n\n").filter((e) => e.startsWith("data: {")).map((e) => JSON.parse(e.slice(6)));
    const calls = events.flatMap((e) => e.choices[0]?.delta?.tool_calls ?? []);
    assert.equal(calls[0].id, "call_fake0");
    assert.equal(calls[0].function.name, "where");
    assert.equal(calls.map((c: any) => c.function?.arguments ?? "").join(""), '{"city":"Lima"}');
    assert.equal(events.at(-1).choices[0].finish_reason, "tool_calls");
  });

  test("embeddings: errors name the field too", async () => {
    const post = (body: unknown) => fetch(`${net.client.url}/v1/embeddings`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    let e = await error(await post({ model: MODEL }));
    assert.deepEqual([e.status, e.param, e.code], [400, "input", "missing_required_parameter"]);
    e = await error(await post({ model: MODEL, input: "" }));
    assert.deepEqual([e.status, e.param], [400, "input"]);
    e = await error(await post({ model: MODEL, input: "x", encoding_format: "hex" }));
    assert.deepEqual([e.status, e.param, e.code], [400, "encoding_format", "invalid_value"]);
    const ok = (await (await post({ model: MODEL, input: "one two", dimensions: 4 })).json()) as any;
    assert.equal(ok.data[0].embedding.length, 4);
    assert.deepEqual(ok.usage, { prompt_tokens: 2, total_tokens: 2 });
  });
});

describe("HTTP", () => {
  test("405 names the allowed methods; HEAD works where GET does; OPTIONS answers", async () => {
    const url = net.client.url;
    let res = await fetch(`${url}/v1/models`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, HEAD, OPTIONS");
    assert.equal((await error(res)).code, "method_not_allowed");
    res = await fetch(`${url}/v1/models`, { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "application/json");
    assert.equal(await res.text(), "");
    res = await fetch(`${url}/v1/embeddings`, { method: "OPTIONS" });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("allow"), "POST, OPTIONS");
  });

  test("415 for a body that is not sent as JSON, 400 for bytes that are not UTF-8", async () => {
    let res = await fetch(`${net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: JSON.stringify({ model: MODEL, messages: hi }) });
    let e = await error(res);
    assert.deepEqual([e.status, e.code], [415, "unsupported_media_type"]);
    assert.match(e.message, /application\/json/);
    const bad = Buffer.concat([Buffer.from(`{"model":"${MODEL}","messages":[{"role":"user","content":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}]}')]);
    res = await fetch(`${net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: bad });
    e = await error(res);
    assert.deepEqual([e.status, e.code], [400, "invalid_encoding"]);
    const before = net.upstreams[0]!.requests;
    assert.equal(net.upstreams[0]!.requests, before, "nothing reached the engine");
  });

  test("every response carries x-request-id; a completion's is its id", async () => {
    const err = await fetch(`${net.client.url}/v1/nowhere`);
    assert.match(err.headers.get("x-request-id") ?? "", /^req_[0-9a-f]{24}$/);
    const ok = await chat(net.client.url, { model: MODEL, messages: hi });
    const body = (await ok.json()) as any;
    assert.equal(ok.headers.get("x-request-id"), body.id);
  });

  test("CORS: pages on this machine are allowed by default, others are not", async () => {
    const local = await fetch(`${net.client.url}/v1/models`, { headers: { origin: "http://localhost:5173" } });
    assert.equal(local.headers.get("access-control-allow-origin"), "http://localhost:5173");
    assert.match(local.headers.get("access-control-expose-headers") ?? "", /x-request-id/);
    const pre = await fetch(`${net.client.url}/v1/chat/completions`, { method: "OPTIONS", headers: { origin: "http://127.0.0.1:8080", "access-control-request-method": "POST", "access-control-request-headers": "content-type, authorization" } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-methods"), "POST, OPTIONS");
    assert.equal(pre.headers.get("access-control-allow-headers"), "content-type, authorization");
    const evil = await chat(net.client.url, { model: MODEL, messages: hi }, { headers: { "content-type": "application/json", origin: "https://evil.example" } });
    const e = await error(evil);
    assert.deepEqual([e.status, e.code], [403, "cors_origin_not_allowed"]);
    assert.equal(evil.headers.get("access-control-allow-origin"), null);
    assert.match(e.message, /--cors-origin https:\/\/evil\.example/);
  });

  test("CORS: configured origins, or any with *", async () => {
    for (const [origins, origin, allowed] of [[["https://app.example"], "https://app.example", "https://app.example"], [["*"], "https://any.example", "*"], [["https://app.example"], "https://other.example", null]] as const) {
      const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: 1 }, verifyProxy: acceptAnyPeer, log: silentLogger, corsOrigins: [...origins] });
      await client.start();
      try {
        // No proxy behind this client: the 503 still carries the CORS answer (a page can read why it failed).
        const res = await fetch(`${client.url}/v1/models`, { headers: { origin } });
        assert.equal(res.headers.get("access-control-allow-origin"), allowed, `${origins} / ${origin}`);
      } finally {
        await client.stop();
      }
    }
  });

  test("503 says when to retry", async () => {
    const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: 1 }, verifyProxy: acceptAnyPeer, log: silentLogger });
    await client.start();
    try {
      const res = await chat(client.url, { model: MODEL, messages: hi });
      assert.equal(res.status, 503);
      assert.match(res.headers.get("retry-after") ?? "", /^\d+$/);
      assert.ok(res.headers.get("x-request-id"));
    } finally {
      await client.stop();
    }
  });
});

test("a request that runs past the client's timeout is cancelled and answered 504", async () => {
  const slow = await startTestNetwork([{ model: MODEL, tokens: 50, tokenDelayMs: 50 }], { client: { requestTimeoutMs: 300 } });
  try {
    const res = await chat(slow.client.url, { model: MODEL, messages: hi });
    const e = await error(res);
    assert.deepEqual([e.status, e.code], [504, "timeout"]);
    assert.match(e.message, /--request-timeout/);
    // The engine was told to stop (the soft cancel reached it), long before its 50 tokens.
    for (let i = 0; i < 100 && slow.upstreams[0]!.aborted === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(slow.upstreams[0]!.aborted, 1);
  } finally {
    await slow.close();
  }
});

describe("audio transcriptions", () => {
  test("the official SDK uploads a file; it travels sealed, the engine's answer comes back as it wrote it", async () => {
    const { default: OpenAI, toFile } = await import("openai");
    const sdk = new OpenAI({ baseURL: `${net.client.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const audio = Buffer.alloc(3000, 7);
    const { data, response } = await sdk.audio.transcriptions.create({ model: MODEL, file: await toFile(audio, "speech.wav"), language: "fr" }).withResponse();
    assert.equal(data.text, "heard 3000 bytes of speech.wav in fr");
    assert.equal(response.headers.get("x-cocoon-sealed"), "true");
    assert.equal(response.headers.get("x-cocoon-receipt"), "verified");
    assert.deepEqual(net.upstreams[0]!.forms.at(-1), { file: { filename: "speech.wav", bytes: 3000 }, model: MODEL, language: "fr" });
    const text = await sdk.audio.transcriptions.create({ model: MODEL, file: await toFile(audio, "a.wav"), response_format: "text" });
    assert.equal(String(text).trim(), "heard 3000 bytes of a.wav");
  });

  test("bad forms are named: no file, unknown field, wrong format, streaming, not multipart", async () => {
    const post = (form: FormData) => fetch(`${net.client.url}/v1/audio/transcriptions`, { method: "POST", body: form });
    const form = (fields: Record<string, string>, file = true) => {
      const f = new FormData();
      for (const [k, v] of Object.entries(fields)) f.append(k, v);
      if (file) f.append("file", new Blob([new Uint8Array(10)]), "a.wav");
      return f;
    };
    const cases: [FormData, number, string, string][] = [
      [form({ model: MODEL }, false), 400, "file", "missing_required_parameter"],
      [form({}), 400, "model", "missing_required_parameter"],
      [form({ model: MODEL, colour: "red" }), 400, "colour", "unknown_parameter"],
      [form({ model: MODEL, response_format: "mp3" }), 400, "response_format", "invalid_value"],
      [form({ model: MODEL, stream: "true" }), 400, "stream", "unsupported_parameter"],
    ];
    for (const [f, status, param, code] of cases) {
      const e = await error(await post(f));
      assert.deepEqual([e.status, e.param, e.code], [status, param, code]);
    }
    const json = await fetch(`${net.client.url}/v1/audio/transcriptions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.deepEqual([(await error(json)).code, json.status], ["unsupported_media_type", 415]);
  });
});
