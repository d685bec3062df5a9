import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { parseSse } from "../../src/protocol/sse.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";

let net: TestNetwork;
let client: TestNetwork["client"];
let proxy: TestNetwork["proxy"];

before(async () => {
  net = await startTestNetwork([{ tokens: 8 }]);
  client = net.client;
  proxy = net.proxy;
});

after(() => net.close());

test("models are listed through the client", async () => {
  const res = await fetch(`${client.url}/v1/models`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { data: { id: string }[] };
  assert.deepEqual(body.data.map((m) => m.id), ["fake-model"]);
});

test("non-streaming chat completion", async () => {
  const res = await fetch(`${client.url}/v1/chat/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "hello there" }], max_tokens: 5 }),
  });
  assert.equal(res.status, 200);
  const body = (await res.json()) as any;
  assert.equal(body.object, "chat.completion");
  assert.equal(body.choices[0].message.content, "hello0 there1 hello2 there3 hello4");
  assert.equal(body.choices[0].finish_reason, "length");
  assert.deepEqual(body.usage, { prompt_tokens: 2, completion_tokens: 5, total_tokens: 7 });
  // The worker's and proxy's timings, as headers an app can read (ttftMs -> x-cocoon-ttft-ms).
  for (const h of ["x-cocoon-ttft-ms", "x-cocoon-total-ms", "x-cocoon-proxy-ms"]) assert.match(res.headers.get(h) ?? "", /^\d+$/, h);
});

test("streaming completion ends with usage and [DONE]", async () => {
  const res = await fetch(`${client.url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "fake-model", prompt: "a b", max_tokens: 3, stream: true, stream_options: { include_usage: true } }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /text\/event-stream/);
  const events: string[] = [];
  for await (const ev of parseSse(res.body as any)) events.push(ev.data);
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const text = chunks.flatMap((c) => c.choices.map((ch: any) => ch.text)).join("");
  assert.equal(text, "a0 b1 a2");
  assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
});

test("bad requests get OpenAI-style errors", async () => {
  const post = (body: string) => fetch(`${client.url}/v1/chat/completions`, { method: "POST", body });
  let res = await post("{not json");
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as any).error.type, "invalid_request_error");
  res = await post(JSON.stringify({ model: "nope", messages: [{ role: "user", content: "x" }] }));
  assert.equal(res.status, 404);
  assert.equal(((await res.json()) as any).error.code, "model_not_found");
  res = await post(JSON.stringify({ model: "fake-model" }));
  assert.equal(res.status, 400);
  assert.equal(((await res.json()) as any).error.param, "messages");
  res = await post(JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "x" }], max_tokens: 0 }));
  assert.equal(res.status, 400);
  res = await post("x".repeat(2 * 1024 * 1024));
  assert.equal(res.status, 413);
});

test("status pages report the request", async () => {
  const st = (await (await fetch(`${client.url}/status`)).json()) as any;
  assert.equal(st.role, "client");
  assert.ok(st.requests.completed >= 2);
  assert.equal(st.sealing.enabled, true);
  assert.ok(st.sealing.receipts.verified >= 2);
  assert.equal(st.attestation.platform, "sim");
  const ps = proxy.statusJson() as any;
  assert.equal(ps.peers.workers.length, 1);
  assert.ok(ps.receipts.verified >= 2);
  assert.ok(ps.tokens.completion >= 8);
});

test("no stream outlives its request on either side of the client-proxy link", async () => {
  for (let i = 0; i < 5; i++) {
    await fetch(`${client.url}/v1/models`).then((r) => r.json());
    const res = await fetch(`${client.url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "fake-model", messages: [{ role: "user", content: "x" }], max_tokens: 2 }) });
    await res.json();
    await new Promise((r) => setTimeout(r, 1100)); // let the model and candidate caches expire
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.link.conn!.activeStreams, 0, "client side");
  const proxySide = (proxy as any).clients as Set<{ conn: { activeStreams: number } }>;
  for (const c of proxySide) assert.equal(c.conn.activeStreams, 0, "proxy side");
});
