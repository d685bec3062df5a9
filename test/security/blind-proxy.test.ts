// Proxy blindness, in process: everything the proxy decrypts from TLS is captured; prompt and answer never
// appear in it when sealing is on, and do when it is off (so the capture is known to work).
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat, startTestNetwork } from "../helpers/network.js";
import { parseSse } from "../../src/protocol/sse.js";

const MARKER = "QUETZAL-4f1c9e";

async function run(seal: boolean) {
  const seen: Buffer[] = [];
  const net = await startTestNetwork([{ model: "m", tokens: 6 }], { seal, tap: (_d, data) => seen.push(Buffer.from(data)) });
  try {
    const res = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: `tell me about ${MARKER}` }], stream: true });
    let text = "";
    for await (const ev of parseSse(res.body as any)) if (ev.data !== "[DONE]") text += JSON.parse(ev.data).choices[0]?.delta?.content ?? "";
    return { text, capture: Buffer.concat(seen).toString("latin1"), sealedHeader: res.headers.get("x-cocoon-sealed") };
  } finally {
    await net.close();
  }
}

test("with sealing, the proxy never sees the prompt or the answer", async () => {
  const { text, capture, sealedHeader } = await run(true);
  assert.match(text, new RegExp(MARKER), "the app gets the full answer");
  assert.equal(sealedHeader, "true");
  assert.ok(capture.length > 1000, "the capture holds the traffic");
  assert.ok(!capture.includes(MARKER), "prompt marker leaked to the proxy");
  assert.ok(!capture.includes("tell me about"), "prompt text leaked to the proxy");
  assert.ok(!capture.includes(`${MARKER}1`), "answer leaked to the proxy");
});

test("without sealing (development only) the same capture shows the prompt: the check above can fail", async () => {
  const { capture } = await run(false);
  assert.ok(capture.includes(MARKER));
});

test("embeddings, tool calls and audio uploads are sealed the same way: the proxy sees none of them", async () => {
  const seen: Buffer[] = [];
  const net = await startTestNetwork([{ model: "m", tokens: 6 }], { tap: (_d, data) => seen.push(Buffer.from(data)) });
  try {
    const post = (path: string, body: unknown) => fetch(`${net.client.url}/v1/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const emb = (await (await post("embeddings", { model: "m", input: `embed ${MARKER}` })).json()) as any;
    assert.equal(emb.data.length, 1);
    const tools = [{ type: "function", function: { name: `tool_${MARKER.replace(/-/g, "_")}`, parameters: { type: "object", properties: { q: { type: "string" } } } } }];
    const call = (await (await post("chat/completions", { model: "m", messages: [{ role: "user", content: `find ${MARKER}` }], tools })).json()) as any;
    assert.match(call.choices[0].message.tool_calls[0].function.arguments, new RegExp(MARKER));
    const form = new FormData();
    form.append("model", "m");
    form.append("prompt", MARKER);
    form.append("file", new Blob([Buffer.from(`audio ${MARKER}`)]), `${MARKER}.wav`);
    const tr = (await (await fetch(`${net.client.url}/v1/audio/transcriptions`, { method: "POST", body: form })).json()) as any;
    assert.match(tr.text, new RegExp(`of ${MARKER}\\.wav`));
    const capture = Buffer.concat(seen).toString("latin1");
    assert.ok(capture.length > 1000, "the capture holds the traffic");
    assert.ok(!capture.includes(MARKER), "a marker leaked to the proxy");
    assert.ok(!capture.includes(MARKER.replace(/-/g, "_")), "the tool name leaked to the proxy");
  } finally {
    await net.close();
  }
});
