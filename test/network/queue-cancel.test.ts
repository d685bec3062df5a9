// A request waiting in the proxy's queue (every worker slot busy) leaves it as soon as its app goes away: the wait is
// cancelled (not left to its deadline) and the request never reaches a worker.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chat, startTestNetwork } from "../helpers/network.js";

const msg = (content: string) => [{ role: "user", content }];
const until = async (what: string, ok: () => boolean) => {
  for (let i = 0; !ok(); i++) {
    if (i > 1000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

test("an app that leaves while its request waits for a worker slot cancels the wait", async () => {
  // One worker, 4 slots, answers that take a while: a fifth request waits in the queue.
  const net = await startTestNetwork([{ model: "m", tokens: 200, tokenDelayMs: 10 }]);
  const queue = () => net.proxy.statusJson().queue as { queued: number; cancelled: number; waiting?: number };
  try {
    const busy = Array.from({ length: 4 }, () => chat(net.client.url, { model: "m", messages: msg("busy") }));
    await until("the worker to be full", () => (net.proxy.statusJson() as any).peers.workers[0].active === 4);
    const ac = new AbortController();
    const waiting = chat(net.client.url, { model: "m", messages: msg("waits") }, { signal: ac.signal }).catch((e: Error) => e);
    await until("the fifth request to wait in the queue", () => queue().queued >= 1);
    ac.abort();
    await until("the wait to be cancelled", () => queue().cancelled >= 1);
    assert.ok((await waiting) instanceof Error, "the app's own request was aborted");
    for (const r of await Promise.all(busy)) {
      assert.equal(r.status, 200);
      await r.text();
    }
    assert.equal(net.upstreams[0]!.requests, 4, "the cancelled request never reached the engine");
  } finally {
    await net.close();
  }
});
