// ProxyLink's model list cache: requests that find it expired share one refresh (no stampede of `models` calls to
// the proxy when many requests arrive at once), and a failed refresh is not cached.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ProxyLink } from "../../src/client/proxy-link.js";
import { acceptAnyPeer } from "../../src/protocol/transport.js";
import { silentLogger } from "../../src/util/log.js";
import { ApiError } from "../../src/protocol/openai.js";

/** A link that is never started: `call` (the proxy round trip) is replaced by a stand-in that counts the calls. */
function linkWithStandInProxy(answer: () => Promise<Record<string, unknown>>): { link: ProxyLink; calls: () => number } {
  const link = new ProxyLink({ host: "127.0.0.1", port: 1, clientId: "c", verifyProxy: acceptAnyPeer, log: silentLogger });
  let calls = 0;
  link.call = async (head) => {
    assert.equal(head.op, "models");
    calls++;
    return answer();
  };
  return { link, calls: () => calls };
}

test("concurrent requests share one models refresh, then the cache answers", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { link, calls } = linkWithStandInProxy(async () => {
    await gate;
    return { models: [{ id: "m", workers: 1, capacity: 4, created: 0 }] };
  });
  const all = Promise.all(Array.from({ length: 50 }, () => link.models()));
  release();
  const replies = await all;
  assert.equal(calls(), 1, "one call for 50 concurrent requests");
  for (const r of replies) assert.deepEqual(r.models.map((m) => m.id), ["m"]);
  await link.models();
  assert.equal(calls(), 1, "answered from the cache");
});

test("a failed refresh reaches every waiter and is not cached", async () => {
  let fail = true;
  const { link, calls } = linkWithStandInProxy(async () => {
    if (fail) throw new Error("proxy went away");
    return { models: [] };
  });
  const results = await Promise.allSettled([link.models(), link.models()]);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.ok((r as PromiseRejectedResult).reason instanceof ApiError);
    assert.match((r as PromiseRejectedResult).reason.message, /did not list its models: proxy went away/);
  }
  assert.equal(calls(), 1);
  fail = false;
  assert.deepEqual((await link.models()).models, []);
  assert.equal(calls(), 2, "the failure was not cached");
});
