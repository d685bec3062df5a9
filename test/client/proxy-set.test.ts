// Which proxy takes a request: the healthiest connected one (in flight x RTT x refusals), cooling down after "not
// now" refusals, replaced when unreachable for DROP_AFTER_MS, used again when back. Links here are stand-ins with
// the fields the set reads (a real link is covered by test/network/multi-proxy.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { COOLDOWN_MIN_MS, DROP_AFTER_MS, ProxySet, type ProxyTarget } from "../../src/client/proxy-set.js";
import { silentLogger } from "../../src/util/log.js";
import type { ProxyLink } from "../../src/client/proxy-link.js";

class FakeLink {
  connected = false;
  started = false;
  stopped = false;
  conn: { rttMs?: number } | undefined;
  connectedSince: number | undefined;
  lastError: string | undefined;
  constructor(readonly target: ProxyTarget) {}
  start() {
    this.started = true;
  }
  stop() {
    this.stopped = true;
  }
  async waitConnected() {}
  up(at: number, rttMs?: number) {
    this.connected = true;
    this.connectedSince = at;
    this.conn = { rttMs };
  }
  down() {
    this.connected = false;
    this.conn = undefined;
  }
}

function setup(n: number, maxLinks = 3) {
  let now = 1_000_000;
  const links = new Map<string, FakeLink>();
  const set = new ProxySet({
    makeLink: (t) => {
      const l = new FakeLink(t);
      links.set(t.key, l);
      return l as unknown as ProxyLink;
    },
    maxLinks,
    log: silentLogger,
    now: () => now,
    random: () => 0.5,
  });
  const targets = Array.from({ length: n }, (_, i): ProxyTarget => ({ key: `p${i}`, host: "127.0.0.1", port: 1000 + i }));
  set.setTargets(targets);
  set.start();
  return { set, links, targets, advance: (ms: number) => (now += ms), now: () => now };
}

test("links at most maxLinks targets; picks the lowest in-flight x RTT; a refusal cools a proxy down", () => {
  const { set, links, now } = setup(5, 3);
  assert.equal(set.all.length, 3);
  assert.ok([...links.values()].every((l) => l.started));
  const [a, b, c] = set.all.map((r) => links.get(r.target.key)!);
  a!.up(now(), 10);
  b!.up(now(), 40);
  assert.equal(set.pick()!.target.key, a!.target.key, "nearest first");
  const ra = set.all.find((r) => r.target.key === a!.target.key)!;
  set.begin(ra);
  set.begin(ra);
  set.begin(ra);
  set.begin(ra); // (4+1) x 10 = 50 > (0+1) x 40
  assert.equal(set.pick()!.target.key, b!.target.key, "a busy near proxy loses to an idle farther one");
  for (let i = 0; i < 4; i++) set.end(ra, { ok: true });
  const rb = set.all.find((r) => r.target.key === b!.target.key)!;
  set.begin(rb);
  set.end(rb, { ok: false, refusal: "no_worker" });
  assert.equal(set.pick(new Set([a!.target.key]))?.target.key, b!.target.key, "cooling down, but the only one left: still used");
  set.end(ra, { ok: false, refusal: "overloaded" }); // ra cooling too; c is not connected
  assert.ok(ra.coolUntil >= now() + COOLDOWN_MIN_MS);
  assert.equal(set.pick(new Set([b!.target.key]))?.target.key, a!.target.key);
  assert.equal(set.pick(new Set([a!.target.key, b!.target.key])), undefined, "c is not connected");
  void c;
});

test("an unreachable link gives its place to an unlinked target after DROP_AFTER_MS; a proxy back is clean again", () => {
  const { set, links, advance, now } = setup(4, 2);
  const linked = set.all.map((r) => r.target.key);
  assert.equal(linked.length, 2);
  const [x, y] = linked.map((k) => links.get(k)!);
  x!.up(now(), 5);
  // y never connects.
  set.tend();
  advance(DROP_AFTER_MS - 1);
  set.tend();
  assert.deepEqual(set.all.map((r) => r.target.key).sort(), [...linked].sort());
  advance(2);
  set.tend();
  assert.ok(y!.stopped, "the unreachable link was stopped");
  const now2 = set.all.map((r) => r.target.key);
  assert.equal(now2.length, 2);
  assert.ok(now2.includes(x!.target.key) && !now2.includes(y!.target.key));
  // A route that refused, went down and came back starts clean.
  const rx = set.all.find((r) => r.target.key === x!.target.key)!;
  set.begin(rx);
  set.end(rx, { ok: false, refusal: "connection_lost" });
  x!.down();
  set.tend();
  advance(100);
  x!.up(now(), 5);
  set.tend();
  assert.equal(rx.refusals, 0);
  assert.equal(rx.coolUntil, 0);
});

test("a target that leaves the list is unlinked; one whose endpoint moved is relinked", () => {
  const { set, links, targets } = setup(2, 3);
  set.setTargets([targets[0]!, { ...targets[1]!, port: 2222 }]);
  assert.equal(set.all.length, 2);
  assert.equal(set.all.find((r) => r.target.key === "p1")!.target.port, 2222);
  set.setTargets([targets[0]!]);
  assert.deepEqual(set.all.map((r) => r.target.key), ["p0"]);
  assert.ok(links.get("p1")!.stopped);
});
