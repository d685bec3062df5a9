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
