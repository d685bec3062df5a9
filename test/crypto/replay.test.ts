import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { DEFAULT_MAX_ENTRIES_PER_KEY, ReplayCache } from "../../src/crypto/replay.js";
import { generateHpkeKeyPair, openRequest, sealRequest } from "../../src/crypto/seal.js";

const key = () => new Uint8Array(randomBytes(32));
const id = () => new Uint8Array(randomBytes(32));

test("an id is fresh once, then replayed; other ids and other keys are independent", () => {
  const cache = new ReplayCache();
  const k1 = key();
  const k2 = key();
  const a = id();
  assert.equal(cache.admit(k1, a, [k1, k2]), "fresh");
  assert.equal(cache.admit(k1, a, [k1, k2]), "replayed");
  assert.equal(cache.admit(k1, Uint8Array.from(a), [k1, k2]), "replayed", "by value, not by object");
  assert.equal(cache.admit(Uint8Array.from(k1), a, [k1, k2]), "replayed", "the key is matched by its bytes");
  assert.equal(cache.admit(k1, id(), [k1, k2]), "fresh");
  assert.equal(cache.admit(k2, a, [k1, k2]), "fresh", "another key is another HPKE context");
  assert.deepEqual(
    { ...cache.stats(), tableBytes: 0 },
    { keys: 2, entries: 3, maxEntriesPerKey: DEFAULT_MAX_ENTRIES_PER_KEY, tableBytes: 0, refusedReplays: 3, refusedFull: 0 },
  );
});

test("entries live exactly as long as the key that opened them is held (renewal keeps the previous key)", () => {
  const cache = new ReplayCache();
  const [k1, k2, k3] = [key(), key(), key()];
  const a = id();
  assert.equal(cache.admit(k1, a, [k1]), "fresh");
  // Renewal: the worker holds [k2, k1]; requests sealed to k1 are still opened, so k1's memory stays.
  assert.equal(cache.admit(k2, id(), [k2, k1]), "fresh");
  assert.equal(cache.admit(k1, a, [k2, k1]), "replayed");
  assert.equal(cache.entriesFor(k1), 1);
  // Next renewal: [k3, k2]; k1 cannot open anything any more, and its partition is dropped.
  assert.equal(cache.admit(k3, id(), [k3, k2]), "fresh");
  assert.equal(cache.entriesFor(k1), 0);
  assert.equal(cache.stats().keys, 2);
  assert.throws(() => cache.admit(k1, a, [k3, k2]), /not among the keys the worker holds/);
  cache.retainOnly([]);
  assert.equal(cache.stats().keys, 0);
});

test("a full partition refuses new ids (never forgets), still reports replays, and signals pressure once", () => {
  const pressure: number[] = [];
  const cache = new ReplayCache({ maxEntriesPerKey: 100, onPressure: (_k, n, max) => pressure.push(n, max) });
  const [k1, k2] = [key(), key()];
  const ids = Array.from({ length: 100 }, id);
  for (const i of ids) assert.equal(cache.admit(k1, i, [k1, k2]), "fresh");
  assert.deepEqual(pressure, [75, 100], "pressure at 75% of the cap, once");
  assert.equal(cache.admit(k1, id(), [k1, k2]), "full");
  assert.equal(cache.admit(k1, ids[0]!, [k1, k2]), "replayed", "the oldest entry is still remembered");
  assert.equal(cache.admit(k1, ids[99]!, [k1, k2]), "replayed");
  assert.equal(cache.admit(k2, id(), [k1, k2]), "fresh", "a renewed key starts empty");
  assert.equal(cache.stats().refusedFull, 1);
  assert.equal(cache.stats().refusedReplays, 2);
  assert.equal(cache.entriesFor(k1), 100);
});

test("the table stays compact and exact as it grows: no false hits among 200,000 ids, at most 16 bytes per entry", () => {
  const n = 200_000;
  const cache = new ReplayCache({ maxEntriesPerKey: n });
  const k = key();
  const all = randomBytes(32 * n);
  for (let i = 0; i < n; i++) assert.equal(cache.admit(k, all.subarray(i * 32, i * 32 + 32), [k]), "fresh");
  for (let i = 0; i < n; i += 997) assert.equal(cache.admit(k, all.subarray(i * 32, i * 32 + 32), [k]), "replayed");
  const s = cache.stats();
  assert.equal(s.entries, n);
  assert.ok(s.tableBytes <= 16 * 2 ** Math.ceil(Math.log2(n)), `table of ${s.tableBytes} bytes for ${n} entries`);
  assert.equal(cache.admit(k, id(), [k]), "full");
});

test("bad options and inputs are refused with clear errors", () => {
  assert.throws(() => new ReplayCache({ maxEntriesPerKey: 0 }), /maxEntriesPerKey must be/);
  assert.throws(() => new ReplayCache({ maxEntriesPerKey: 1.5 }), /maxEntriesPerKey must be/);
  assert.throws(() => new ReplayCache({ pressureRatio: 0 }), /pressureRatio/);
  const cache = new ReplayCache();
  const k = key();
  assert.throws(() => cache.admit(k, new Uint8Array(0), [k]), /replay id must be non-empty/);
});

test("with openRequest: the same envelope opened twice is a replay; a fresh sealing of the same body is not", async () => {
  const kp = await generateHpkeKeyPair();
  const me = { workerId: "w", hpkePrivateKey: kp.privateKey, hpkePublicKey: kp.publicKey };
  const meta = { requestId: "r1", model: "m" };
  const body = new TextEncoder().encode("same body");
  const sealed = await sealRequest(body, [{ workerId: "w", hpkePublicKey: kp.publicKey }], meta);
  const cache = new ReplayCache();
  const admit = async (bytes: Uint8Array) => cache.admit(kp.publicKey, (await openRequest(bytes, me, meta)).replayId, [kp.publicKey]);
  assert.equal(await admit(sealed.bytes), "fresh");
  assert.equal(await admit(sealed.bytes), "replayed");
  assert.equal(await admit((await sealRequest(body, [{ workerId: "w", hpkePublicKey: kp.publicKey }], meta)).bytes), "fresh");
});
