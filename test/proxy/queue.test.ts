// The proxy's wait queue (issue #11.4): a burst beyond capacity waits for free slots instead of failing; the queue is
// bounded, fair between clients, has a deadline, and only a full queue or an expired wait gives a 429 with Retry-After.
import { test } from "node:test";
import assert from "node:assert/strict";
import { QueueFull, SlotQueue, type SlotSource } from "../../src/proxy/queue.js";
import { startTestNetwork } from "../helpers/network.js";

/** One worker for model "m" whose free slots the test sets. */
function source(): { free: number; list: () => SlotSource[] } {
  const s = { free: 0, list: () => [{ id: "w1", hasSlotFor: (m: string) => m === "m" && s.free > 0 }] };
  return s;
}

test("queue: round robin between clients, FIFO within one; deadline, cancel and limits", async () => {
  const s = source();
  const q = new SlotQueue({ timeoutMs: 200, maxPerModel: 6, maxPerClient: 4 }, s.list);
  const order: string[] = [];
  const never = new AbortController().signal;
  const waits = [
    ...["a1", "a2", "a3"].map((n) => q.wait("m", "A", undefined, never).then((o) => o === "slot" && order.push(n))),
    q.wait("m", "B", undefined, never).then((o) => o === "slot" && order.push("b1")),
  ];
  assert.equal(q.depth("m"), 4);
  // One slot frees at a time: A's first, then B's only request before A's second (a burst does not starve others).
  for (let i = 0; i < 4; i++) {
    s.free = 1;
    q.kick("m");
    s.free = 0;
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(waits);
  assert.deepEqual(order, ["a1", "b1", "a2", "a3"]);
  assert.equal(q.depth("m"), 0);

  // Limits: 4 per client, 6 per model; refused at once with a reason.
  const ac = new AbortController();
  const held = Array.from({ length: 4 }, () => q.wait("m", "A", undefined, ac.signal));
  assert.throws(() => q.wait("m", "A", undefined, ac.signal), (e: Error) => e instanceof QueueFull && /per client/.test(e.message));
  held.push(q.wait("m", "B", undefined, ac.signal), q.wait("m", "C", undefined, ac.signal));
  assert.throws(() => q.wait("m", "D", undefined, ac.signal), (e: Error) => e instanceof QueueFull && /6 requests already wait/.test(e.message));
  // Cancel ends every wait of that signal; a deadline ends the others.
  ac.abort();
  assert.deepEqual(await Promise.all(held), Array(6).fill("cancelled"));
  assert.equal(await q.wait("m", "E", undefined, never), "timeout");
  // A sealed request waits only for its candidates.
  const sealed = q.wait("m", "F", new Set(["w9"]), never);
  s.free = 1;
  q.kick("m");
  assert.equal(await sealed, "timeout", "a free slot on a worker it was not sealed to does not wake it");
  const st = q.status() as { servedAfterWait: number; timedOut: number; refusedFull: number; cancelled: number };
  assert.deepEqual([st.servedAfterWait, st.timedOut, st.refusedFull, st.cancelled], [4, 2, 2, 6]);
});

async function burst(url: string, n: number): Promise<Response[]> {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: `burst ${i}` }], max_tokens: 6, stream: true }),
      }),
    ),
  );
}

test("a burst of 40 streams on 4 slots waits and is served; with a small queue the rest get 429 with Retry-After", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 6, tokenDelayMs: 20 }]);
  try {
    const rs = await burst(net.client.url, 40);
    const texts = await Promise.all(rs.map((r) => r.text()));
    assert.deepEqual(rs.map((r) => r.status), Array(40).fill(200), "every request of the burst was served");
    assert.ok(texts.every((t) => t.includes("[DONE]")));
    const queue = net.proxy.statusJson().queue as { servedAfterWait: number; waitMs: { max: number } };
    assert.ok(queue.servedAfterWait >= 30, `most of the burst waited for a slot (${queue.servedAfterWait})`);
    assert.ok(queue.waitMs.max > 0);
  } finally {
    await net.close();
  }
  const small = await startTestNetwork([{ model: "m", tokens: 6, tokenDelayMs: 50 }], { queue: { maxPerModel: 4 } });
  try {
    const rs = await burst(small.client.url, 20);
    await Promise.all(rs.map((r) => r.text()));
    const refused = rs.filter((r) => r.status === 429);
    assert.ok(refused.length > 0 && refused.length <= 12, `${refused.length} refused (4 running, 4 waiting)`);
    assert.equal(rs.filter((r) => r.status === 200).length, 20 - refused.length);
    for (const r of refused) assert.equal(r.headers.get("retry-after"), "1");
  } finally {
    await small.close();
  }
});
