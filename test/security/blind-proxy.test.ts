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
