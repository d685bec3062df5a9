import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { startTestNetwork } from "../helpers/network.js";
import { waitFor } from "../helpers/processes.js";

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

test("an engine that is down makes the backend unhealthy with a reason; it recovers when the engine comes up", async () => {
  const port = await freePort();
  let changes = 0;
  const b = new OpenAiBackend({ upstream: `http://127.0.0.1:${port}`, probeIntervalMs: 100 });
  b.subscribe(() => changes++);
  await b.start();
  try {
    const h = await b.health();
    assert.equal(h.ok, false);
    assert.match(h.reason!, /unavailable.*Start the engine or fix --upstream/);
    assert.deepEqual(b.models(), []);
    const up = await startFakeUpstream({ port, model: "late-model" });
    try {
      await waitFor("recovery", async () => ((await b.health()).ok ? true : undefined), 5_000);
      assert.deepEqual(b.models().map((m) => m.id), ["late-model"]);
      assert.ok(changes >= 1);
    } finally {
      await up.close();
    }
  } finally {
    await b.close();
  }
});

test("the proxy sees a worker whose engine is down as disabled, with the reason", async () => {
  const net = await startTestNetwork([{ model: "m" }]);
  try {
    await net.upstreams[0]!.close();
    const backend = (net.workers[0] as any).opts.backend as OpenAiBackend;
    await backend.probe();
    const w = await waitFor("the worker to be disabled", async () => {
      const x = (net.proxy.statusJson() as any).peers.workers[0];
      return x && !x.enabled ? x : undefined;
    });
    assert.match(w.reason, /unavailable/);
    const res = await fetch(`${net.client.url}/v1/models`);
    assert.deepEqual(((await res.json()) as any).data, []);
  } finally {
    await net.close();
  }
});

test("generations reuse one keep-alive connection to the engine; a generation the caller abandons closes its own", async () => {
  const up = await startFakeUpstream({ tokens: 8 });
  let connections = 0;
  up.server.on("connection", () => connections++);
  const b = new OpenAiBackend({ upstream: up.url, probeIntervalMs: 60_000 });
  await b.start();
  const req = { endpoint: "chat", model: "fake-model", maxTokens: 8, temperature: 0, stop: [], messages: [{ role: "user", content: "keep alive please" }] } as unknown as Parameters<OpenAiBackend["generate"]>[0];
  try {
    const afterProbe = connections;
    for (let i = 0; i < 20; i++) {
      const gen = b.generate(req, new AbortController().signal);
      let text = "";
      let r = await gen.next();
      for (; !r.done; r = await gen.next()) text += r.value.join("");
      assert.equal(r.value.finishReason, "stop");
      assert.equal(r.value.usageSource, "backend");
      assert.match(text, /keep0 alive1/);
      await new Promise((res) => setImmediate(res)); // the body's end drains on the next turn
    }
    assert.equal(connections - afterProbe, 1, "20 sequential generations over one connection");
    // Abandoning a stream mid-way must not hand a half-read response back to the pool.
    const gen = b.generate(req, new AbortController().signal);
    await gen.next();
    await gen.return(undefined as never);
    const again = b.generate(req, new AbortController().signal);
    let r = await again.next();
    while (!r.done) r = await again.next();
    assert.equal(r.value.finishReason, "stop");
    assert.equal(connections - afterProbe, 2, "the abandoned response's connection was closed, a new one opened");
  } finally {
    await b.close();
    await up.close();
  }
});

test("a request that reaches a worker whose engine just stopped answering goes to another worker, not a 404", async () => {
  // The engine fails a probe and the worker's announcement of it has not reached the proxy yet (under load the probe
  // times out while requests are on their way): the worker must answer with a retryable code, never model_not_found.
  const net = await startTestNetwork([{ model: "m" }, { model: "m" }]);
  try {
    const down = (net.workers[0] as any).opts.backend as OpenAiBackend;
    (down as any).state = { ok: false, reason: "the engine's health probe timed out" }; // listeners not told: the proxy still routes to it
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 3 }) });
      assert.equal(res.status, 200, await res.clone().text());
      assert.equal(res.headers.get("x-cocoon-worker"), "w2");
      await res.text();
    }
    // With no other worker, the app hears a retryable 502 that names the engine, not "does not serve".
    await net.workers[1]!.stop();
    await waitFor("w2 gone", async () => (net.proxy.pool.size === 1 ? true : undefined));
    const res = await fetch(`${net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }], max_tokens: 3 }) });
    const body = (await res.json()) as any;
    assert.notEqual(res.status, 404, JSON.stringify(body));
    assert.ok(res.status >= 500, `${res.status} ${JSON.stringify(body)}`);
  } finally {
    await net.close();
  }
});
