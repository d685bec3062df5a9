// The proxy's worker pool on its own: which worker gets the next request, why none does, what /v1/models lists, and
// how a reconnecting worker keeps its identity history. Connections are stand-ins (only `closed` and `close` are read).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "../../src/protocol/connection.js";
import type { Announce } from "../../src/protocol/messages.js";
import { canTake, INITIAL_LATENCY_MS, WorkerPool } from "../../src/proxy/pool.js";

function fakeConn(): Connection & { closedWith?: string } {
  const c = {
    closed: false,
    closedWith: undefined as string | undefined,
    close(code: string) {
      c.closed = true;
      c.closedWith = code;
    },
  };
  return c as unknown as Connection & { closedWith?: string };
}

const peer = (description: string) => ({ description, insecure: true });

function announce(workerId: string, over: Partial<Announce> = {}): Announce {
  return { type: "announce", workerId, models: [{ id: "m" }], capacity: 2, enabled: true, backend: "fake", ...over };
}

test("pick prefers the worker with the lowest (active + 1) x latency, skipping full, disabled, closed and excluded ones", () => {
  const pool = new WorkerPool();
  const a = pool.upsert(fakeConn(), peer("a"), announce("a"));
  const b = pool.upsert(fakeConn(), peer("b"), announce("b"));
  assert.equal(a.latencyMs, INITIAL_LATENCY_MS);
  pool.recordSuccess(a, 100, 1, 1); // a gets faster
  assert.equal(pool.pick("m")?.id, "a");
  a.active = 2; // full
  assert.equal(canTake(a, "m"), false);
  assert.equal(pool.pick("m")?.id, "b");
  assert.equal(pool.pick("m", new Set(["b"])), undefined, "tried workers are skipped");
  a.active = 0;
  assert.equal(pool.pick("m", new Set(), new Set(["b"]))?.id, "b", "a sealed request goes only to its candidates");
  assert.equal(pool.pick("other"), undefined, "nobody serves another model");
  (a.conn as unknown as { closed: boolean }).closed = true;
  assert.equal(pool.pick("m")?.id, "b");
  pool.upsert(b.conn, peer("b"), announce("b", { enabled: false, reason: "draining" }));
  assert.equal(pool.pick("m"), undefined);
});

test("explainNone names the reason with the right code", () => {
  const pool = new WorkerPool();
  assert.equal(pool.explainNone("m", 0).code, "no_worker");
  const w = pool.upsert(fakeConn(), peer("w"), announce("w", { capacity: 1 }));
  assert.equal(pool.explainNone("nope", 0).code, "model_not_found");
  assert.match(pool.explainNone("nope", 0).message, /Available: m/);
  w.active = 1;
  assert.equal(pool.explainNone("m", 0).code, "overloaded");
  assert.equal(pool.explainNone("m", 1).code, "worker_failed");
  pool.upsert(w.conn, peer("w"), announce("w", { enabled: false, reason: "engine down" }));
  const e = pool.explainNone("m", 0);
  assert.equal(e.code, "no_worker");
  assert.match(e.message, /engine down/);
});

test("ranked puts workers with a free slot first, then by load x latency", () => {
  const pool = new WorkerPool();
  const a = pool.upsert(fakeConn(), peer("a"), announce("a", { capacity: 1 }));
  const b = pool.upsert(fakeConn(), peer("b"), announce("b"));
  pool.recordSuccess(a, 10, 0, 0);
  assert.deepEqual(pool.ranked("m").map((w) => w.id), ["a", "b"]);
  a.active = 1;
  assert.deepEqual(pool.ranked("m").map((w) => w.id), ["b", "a"], "a full worker is still a candidate, last");
  void b;
});

test("models() sums workers and capacity per model, enabled and connected only", () => {
  const pool = new WorkerPool();
  pool.upsert(fakeConn(), peer("a"), announce("a", { models: [{ id: "m", contextLength: 512 }, { id: "z" }], capacity: 3 }));
  pool.upsert(fakeConn(), peer("b"), announce("b", { capacity: 4 }));
  pool.upsert(fakeConn(), peer("c"), announce("c", { enabled: false }));
  const { models } = pool.models();
  assert.deepEqual(models.map((m) => [m.id, m.workers, m.capacity]), [["m", 2, 7], ["z", 1, 3]]);
  assert.equal(models[0]!.contextLength, 512);
  assert.deepEqual(pool.modelIds(), ["m", "z"]);
});

test("a second connection with the same worker id replaces the first; the old identity is remembered for receipts", () => {
  const pool = new WorkerPool();
  const first = fakeConn();
  const p1 = peer("first identity");
  pool.upsert(first, p1, announce("w"));
  const second = fakeConn();
  const w = pool.upsert(second, peer("second identity"), announce("w"));
  assert.equal(first.closedWith, "replaced");
  assert.equal(pool.size, 1);
  assert.equal(w.previousPeer, p1);
  // A worker that leaves and comes back (a restart with a renewed identity) keeps the departed one as previous.
  assert.equal(pool.removeConnection(second)?.id, "w");
  assert.equal(pool.size, 0);
  const third = pool.upsert(fakeConn(), peer("third identity"), announce("w"));
  assert.equal(third.previousPeer?.description, "second identity");
  assert.equal(pool.removeConnection(fakeConn()), undefined, "an unknown connection removes nothing");
});

test("the latency average moves toward new samples and counts what was served", () => {
  const pool = new WorkerPool();
  const w = pool.upsert(fakeConn(), peer("w"), announce("w"));
  pool.recordSuccess(w, 0, 5, 7);
  assert.ok(w.latencyMs < INITIAL_LATENCY_MS);
  assert.equal(w.served, 1);
  assert.equal(w.promptTokens, 5);
  assert.equal(w.completionTokens, 7);
  pool.recordFailure(w, "boom");
  assert.equal(w.failures, 1);
  assert.equal(w.lastFailure, "boom");
});
