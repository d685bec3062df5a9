import { test } from "node:test";
import assert from "node:assert/strict";
import { ClientNode } from "../../src/client/client.js";
import { acceptAnyPeer } from "../../src/protocol/transport.js";
import { silentLogger } from "../../src/util/log.js";
import { chat } from "../helpers/network.js";

test("with no proxy reachable the client answers 503 and says what to check", async () => {
  const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: 1 }, verifyProxy: acceptAnyPeer, log: silentLogger });
  await client.start();
  try {
    const res = await chat(client.url, { model: "m", messages: [{ role: "user", content: "x" }] });
    assert.equal(res.status, 503);
    const body = (await res.json()) as any;
    assert.equal(body.error.code, "proxy_unavailable");
    assert.match(body.error.message, /Not connected to the proxy at 127\.0\.0\.1:1.*--proxy/);
    const st = (await (await fetch(`${client.url}/status`)).json()) as any;
    assert.equal(st.peers[0].connected, false);
    assert.match(st.peers[0].lastError, /ECONNREFUSED|nothing listens/);
  } finally {
    await client.stop();
  }
});

test("unknown paths and methods get OpenAI-style errors", async () => {
  const client = new ClientNode({ port: 0, proxy: { host: "127.0.0.1", port: 1 }, verifyProxy: acceptAnyPeer, log: silentLogger });
  await client.start();
  try {
    let res = await fetch(`${client.url}/v1/images/generations`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as any).error.code, "unknown_url");
    res = await fetch(`${client.url}/v1/chat/completions`);
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "POST, OPTIONS");
  } finally {
    await client.stop();
  }
});
