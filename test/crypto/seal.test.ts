import { test } from "node:test";
import assert from "node:assert/strict";
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import fc from "fast-check";
import {
  decodeSealedRequest,
  encodeSealedRequest,
  generateHpkeKeyPair,
  openRequest,
  requestDigest,
  ResponseDigest,
  sealRequest,
  type WorkerHpkeKey,
} from "../../src/crypto/seal.js";
import {
  CHUNK_FLAG_FINAL,
  CHUNK_FLAG_SALTED,
  CHUNK_HEADER_BYTES,
  CHUNK_OVERHEAD_BYTES,
  deriveResponseSecret,
  FIRST_CHUNK_HEADER_BYTES,
  FIRST_CHUNK_OVERHEAD_BYTES,
  RESPONSE_SALT_BYTES,
  RESPONSE_SECRET_BYTES,
  ResponseOpener,
  ResponseSealer,
  saltedResponseKeys,
} from "../../src/crypto/stream.js";
import { encodeSealedRequestHeader, MAX_RECIPIENTS } from "../../src/crypto/envelope.js";
import { hpkeExport, hpkeOpenBase, prepareRecipientKey } from "../../src/crypto/hpke.js";
import { lengthPrefixed16 } from "../../src/crypto/bytes.js";

const enc = new TextEncoder();
const dec = new TextDecoder();
const meta = { requestId: "req-0001", model: "Qwen/Qwen3-8B" };

async function worker(workerId: string): Promise<WorkerHpkeKey> {
  const kp = await generateHpkeKeyPair();
  return { workerId, hpkePrivateKey: kp.privateKey, hpkePublicKey: kp.publicKey };
}
const recipientOf = (w: WorkerHpkeKey) => ({ workerId: w.workerId, hpkePublicKey: w.hpkePublicKey });

/** Seals a request to `workers`, opens it as `workers[chosen]`, returns both ends. */
async function exchange(workers: WorkerHpkeKey[], chosen = 0, body = enc.encode('{"messages":[{"role":"user","content":"hi"}]}')) {
  const sealed = await sealRequest(body, workers.map(recipientOf), meta);
  const opened = await openRequest(sealed.bytes, workers[chosen], meta);
  return { sealed, opened, body };
}

function sealAnswer(responder: { sealChunk(d: Uint8Array, f: boolean): Uint8Array }, parts: string[]): Uint8Array[] {
  return parts.map((p, i) => responder.sealChunk(enc.encode(p), i === parts.length - 1));
}

test("round trip with one recipient: body, streamed answer, digests and answering worker agree", async () => {
  const w = await worker("worker-a");
  const { sealed, opened, body } = await exchange([w]);
  assert.deepEqual(opened.body, body);
  assert.equal(opened.requestDigest, sealed.requestDigest);
  assert.equal(sealed.requestDigest, requestDigest(sealed.bytes));
  assert.ok(!dec.decode(sealed.bytes).includes("messages"), "plaintext must not appear in the envelope");

  const chunks = sealAnswer(opened.responder, ["Hel", "lo", ", world", ""]);
  const got: string[] = [];
  for (const c of chunks) {
    const { data, final } = sealed.opener.openChunk(c);
    got.push(dec.decode(data));
    assert.equal(final, c === chunks[chunks.length - 1]);
  }
  assert.equal(got.join(""), "Hello, world");
  assert.ok(sealed.opener.finished);
  sealed.opener.assertFinished();
  assert.equal(sealed.opener.workerId, "worker-a");
  assert.equal(sealed.opener.responseDigest, opened.responder.responseDigest);
  const independent = new ResponseDigest();
  for (const c of chunks) independent.update(c);
  assert.equal(independent.hex(), opened.responder.responseDigest);
  assert.equal(chunks[1].byteLength, CHUNK_OVERHEAD_BYTES + 2);
});

test("round trip with three recipients: each candidate can open, and the opener learns which one answered", async () => {
  const ws = await Promise.all(["w1", "w2", "w3"].map(worker));
  const body = randomBytes(5000);
  const sealed = await sealRequest(body, ws.map(recipientOf), meta);
  assert.deepEqual(
    decodeSealedRequest(sealed.bytes).recipients.map((r) => r.workerId),
    ["w1", "w2", "w3"],
  );
  for (const w of ws) {
    const opened = await openRequest(sealed.bytes, w, meta);
    assert.deepEqual(opened.body, new Uint8Array(body));
  }
  // The proxy picked w3: its answer opens, and the opener attributes it to w3.
  const opened = await openRequest(sealed.envelope, ws[2], meta); // structured form works too
  const [c0, c1] = sealAnswer(opened.responder, ["answer ", "from w3"]);
  assert.equal(dec.decode(sealed.opener.openChunk(c0).data), "answer ");
  assert.equal(sealed.opener.workerId, "w3");
  assert.equal(dec.decode(sealed.opener.openChunk(c1).data), "from w3");
  assert.ok(sealed.opener.finished);
});

test("a worker hint only orders the tries: a wrong hint still attributes the answer to the worker whose key sealed it", async () => {
  const ws = await Promise.all(["w1", "w2", "w3"].map(worker));
  const sealed = await sealRequest(randomBytes(100), ws.map(recipientOf), meta);
  sealed.opener.preferWorker("w1"); // the proxy claims w1; w2 actually answers
  const opened = await openRequest(sealed.bytes, ws[1], meta);
  const [c0] = sealAnswer(opened.responder, ["from w2"]);
  assert.equal(dec.decode(sealed.opener.openChunk(c0).data), "from w2");
  assert.equal(sealed.opener.workerId, "w2");
});

test("empty and large bodies round trip; the envelope encoding is canonical", async () => {
  const w = await worker("w");
  for (const body of [new Uint8Array(0), new Uint8Array(randomBytes(1 << 20))]) {
    const sealed = await sealRequest(body, [recipientOf(w)], meta);
    assert.deepEqual((await openRequest(sealed.bytes, w, meta)).body, body);
    assert.deepEqual(encodeSealedRequest(decodeSealedRequest(sealed.bytes)), sealed.bytes);
    assert.deepEqual(encodeSealedRequest(sealed.envelope), sealed.bytes);
  }
});

test("a worker that is not a recipient, or holds another key, cannot open", async () => {
  const [a, b, outsider] = await Promise.all(["a", "b", "outsider"].map(worker));
  const sealed = await sealRequest(enc.encode("secret prompt"), [recipientOf(a), recipientOf(b)], meta);
  await assert.rejects(openRequest(sealed.bytes, outsider, meta), /not a recipient.*"a", "b"/);
  // Outsider claims to be "a" (the proxy relabels), but holds its own key.
  await assert.rejects(openRequest(sealed.bytes, { ...outsider, workerId: "a" }, meta), /cannot unwrap the content key/);
  // Inconsistent key pair is reported as such.
  await assert.rejects(
    openRequest(sealed.bytes, { ...a, hpkePublicKey: b.hpkePublicKey }, meta),
    /does not belong to hpkePrivateKey/,
  );
});

test("the proxy cannot swap requestId or model, nor shuffle recipient entries", async () => {
  const [a, b] = await Promise.all(["a", "b"].map(worker));
  const sealed = await sealRequest(enc.encode("prompt"), [recipientOf(a), recipientOf(b)], meta);
  await assert.rejects(openRequest(sealed.bytes, a, { ...meta, model: "cheap/model" }), /cannot unwrap|failed authentication/);
  await assert.rejects(openRequest(sealed.bytes, a, { ...meta, requestId: "req-0002" }), /cannot unwrap|failed authentication/);
  // Swap the wrapped keys of a and b: each entry now fails to unwrap for its labelled worker.
  const env = decodeSealedRequest(sealed.bytes);
  const swapped = {
    ...env,
    recipients: [
      { ...env.recipients[0], enc: env.recipients[1].enc, wrappedKey: env.recipients[1].wrappedKey },
      { ...env.recipients[1], enc: env.recipients[0].enc, wrappedKey: env.recipients[0].wrappedKey },
    ],
  };
  await assert.rejects(openRequest(encodeSealedRequest(swapped), a, meta), /cannot unwrap/);
  // Dropping a recipient changes the authenticated header, so the body no longer opens.
  const dropped = { ...env, recipients: [env.recipients[0]] };
  await assert.rejects(openRequest(encodeSealedRequest(dropped), a, meta), /body failed authentication/);
  // Flipping any ciphertext bit fails.
  const bad = sealed.bytes.slice();
  bad[bad.length - 20] ^= 0x40;
  await assert.rejects(openRequest(bad, a, meta), /body failed authentication/);
});

test("tampered, reordered, replayed, dropped, truncated and post-final chunks are detected", async () => {
  const w = await worker("w");
  const fresh = async () => {
    const { sealed, opened } = await exchange([w]);
    return { opener: sealed.opener, chunks: sealAnswer(opened.responder, ["a", "bb", "ccc", "dddd"]) };
  };
  {
    const { opener, chunks } = await fresh();
    const t = chunks[1].slice();
    t[CHUNK_HEADER_BYTES] ^= 1;
    opener.openChunk(chunks[0]);
    assert.throws(() => opener.openChunk(t), /seq 1 failed authentication/);
    // The opener is spent after an attack: even the genuine chunk is refused now.
    assert.throws(() => opener.openChunk(chunks[1]), /seq 1 failed authentication/);
    assert.ok(!opener.finished);
  }
  {
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    assert.throws(() => opener.openChunk(chunks[2]), /got seq 2 but expected 1; 1 chunk\(s\) were dropped or reordered/);
  }
  {
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    opener.openChunk(chunks[1]);
    assert.throws(() => opener.openChunk(chunks[1]), /seq 1 was already received \(expected 2\); replayed/);
  }
  {
    // Rewriting the clear seq to hide a drop fails authentication (seq is in the AAD and the nonce).
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    const relabelled = chunks[2].slice();
    new DataView(relabelled.buffer, relabelled.byteOffset).setUint32(1, 1);
    assert.throws(() => opener.openChunk(relabelled), /seq 1 failed authentication/);
  }
  {
    // Truncation: set the final flag on a middle chunk -> authentication fails; stop early -> assertFinished throws.
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    const forgedFinal = chunks[1].slice();
    forgedFinal[0] |= 1;
    assert.throws(() => opener.openChunk(forgedFinal), /failed authentication/);
  }
  {
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    opener.openChunk(chunks[1]);
    assert.ok(!opener.finished);
    assert.throws(() => opener.assertFinished(), /truncated.*after 2 chunk\(s\) without the final chunk/);
  }
  {
    const { opener, chunks } = await fresh();
    for (const c of chunks) opener.openChunk(c);
    assert.ok(opener.finished);
    assert.throws(() => opener.openChunk(chunks[3]), /after the final chunk/);
  }
});

test("an answer is bound to its request and to the worker that opened it", async () => {
  const [a, b] = await Promise.all(["a", "b"].map(worker));
  const one = await exchange([a, b], 0);
  const two = await exchange([a, b], 0);
  // Chunk sealed for request one does not open under request two's opener.
  const c = one.opened.responder.sealChunk(enc.encode("x"), true);
  assert.throws(() => two.sealed.opener.openChunk(c), /seq 0 failed authentication.*any of its candidate workers/);
  // Once worker a answered chunk 0, a chunk from the other candidate b (which also holds the content key) is refused.
  const race = await exchange([a, b], 0);
  const bResponder = (await openRequest(race.sealed.bytes, b, meta)).responder;
  race.sealed.opener.openChunk(race.opened.responder.sealChunk(enc.encode("from a"), false));
  assert.equal(race.sealed.opener.workerId, "a");
  bResponder.sealChunk(enc.encode("skip"), false); // b's seq 0
  assert.throws(() => race.sealed.opener.openChunk(bResponder.sealChunk(enc.encode("from b"), true)), /seq 1 .*by worker "a"/);
});

test("the sealer refuses data after the final chunk; bad inputs get clear errors", async () => {
  const w = await worker("w");
  const { opened } = await exchange([w]);
  opened.responder.sealChunk(enc.encode("done"), true);
  assert.ok(opened.responder.finished);
  assert.throws(() => opened.responder.sealChunk(enc.encode("more"), false), /final chunk was already sealed/);
  await assert.rejects(sealRequest(new Uint8Array(1), [], meta), /1\.\.16 candidate workers/);
  const many = Array.from({ length: MAX_RECIPIENTS + 1 }, (_, i) => ({ workerId: `w${i}`, hpkePublicKey: w.hpkePublicKey }));
  await assert.rejects(sealRequest(new Uint8Array(1), many, meta), /1\.\.16 candidate workers/);
  await assert.rejects(sealRequest(new Uint8Array(1), [recipientOf(w), recipientOf(w)], meta), /listed twice/);
  await assert.rejects(sealRequest(new Uint8Array(1), [{ workerId: "x", hpkePublicKey: new Uint8Array(5) }], meta), /32 raw bytes/);
  await assert.rejects(sealRequest(new Uint8Array(1), [recipientOf(w)], { requestId: "", model: "m" }), /requestId must be/);
  await assert.rejects(sealRequest(new Uint8Array(1), [{ ...recipientOf(w), workerId: "w\uD800" }], meta), /valid Unicode/);
  await assert.rejects(sealRequest(new Uint8Array(1), [recipientOf(w)], { ...meta, model: "m\uDC00" }), /lone surrogates/);
  await assert.rejects(sealRequest(new Uint8Array(1), [recipientOf(w)], { requestId: "r", model: "m".repeat(300) }), /model must be/);
});

test("fuzz: decodeSealedRequest turns random bytes into a clear Error, never a crash", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        decodeSealedRequest(bytes);
      } catch (e) {
        assert.ok(e instanceof Error && /^sealed request: /.test(e.message), String(e));
        return;
      }
      assert.fail("random bytes decoded as a sealed request");
    }),
    { numRuns: 2000 },
  );
  // Random bytes behind a valid magic + version still only produce sealed-request errors.
  const prefix = Uint8Array.from([0x43, 0x53, 0x52, 0x51, 1, 0, 0x20, 0, 1, 0, 1, 0, 1]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
      const bytes = new Uint8Array(prefix.length + tail.length);
      bytes.set(prefix);
      bytes.set(tail, prefix.length);
      try {
        decodeSealedRequest(bytes);
      } catch (e) {
        assert.ok(e instanceof Error && /^sealed request: /.test(e.message), String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test("fuzz: any single-byte change or truncation of a valid envelope is refused with an Error", async () => {
  const [a, b] = await Promise.all(["a", "b"].map(worker));
  const sealed = await sealRequest(enc.encode("confidential"), [recipientOf(a), recipientOf(b)], meta);
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: sealed.bytes.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      fc.boolean(),
      async (pos, xor, truncate) => {
        const bad = truncate ? sealed.bytes.slice(0, pos) : sealed.bytes.slice();
        if (!truncate) bad[pos] ^= xor;
        await assert.rejects(openRequest(bad, a, meta), (e: unknown) => e instanceof Error && e.message.length > 10);
      },
    ),
    { numRuns: 300 },
  );
});

test("fuzz: openChunk turns random or mutated bytes into a clear Error", () => {
  const exporterSecret = randomBytes(32);
  const keys = deriveResponseSecret(exporterSecret, Buffer.alloc(32));
  const freshOpener = () => new ResponseOpener("00".repeat(32), [{ workerId: "w", exporterSecret }]);
  const good = new ResponseSealer("w", "00".repeat(32), keys).sealChunk(enc.encode("some answer text"), false);
  assert.equal(dec.decode(freshOpener().openChunk(good).data), "some answer text");
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      assert.throws(() => freshOpener().openChunk(bytes), /^Error: response chunk: /);
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (pos, xor) => {
      const bad = good.slice();
      bad[pos] ^= xor;
      assert.throws(() => freshOpener().openChunk(bad), /^Error: response chunk: /);
    }),
    { numRuns: 1000 },
  );
});

test("property: any body, any candidate count, any chunking round trips and digests agree", async () => {
  const pool = await Promise.all(Array.from({ length: 5 }, (_, i) => worker(`worker-${i}`)));
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 3000 }),
      fc.integer({ min: 1, max: pool.length }),
      fc.nat(),
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
      fc.string({ minLength: 1, maxLength: 40 }),
      async (body, count, pick, parts, model) => {
        const ws = pool.slice(0, count);
        const chosen = ws[pick % count];
        const m = { requestId: "req-prop", model };
        const sealed = await sealRequest(body, ws.map(recipientOf), m);
        const opened = await openRequest(sealed.bytes, chosen, m);
        assert.deepEqual(opened.body, body);
        const all = [...parts, new Uint8Array(0)];
        const received: Uint8Array[] = [];
        all.forEach((p, i) => received.push(sealed.opener.openChunk(opened.responder.sealChunk(p, i === all.length - 1)).data));
        assert.deepEqual(Buffer.concat(received), Buffer.concat(all));
        sealed.opener.assertFinished();
        assert.equal(sealed.opener.workerId, chosen.workerId);
        assert.equal(sealed.opener.responseDigest, opened.responder.responseDigest);
      },
    ),
    { numRuns: 60 },
  );
});

// Issue #10.1: a proxy that replays one sealed request to the same worker must not get two answers under the same key
// and nonces. These open the same envelope twice at the crypto level (no replay cache involved).
test("replay past any cache: two answers to one sealed request use distinct keys (fresh salt per answer)", async () => {
  const w = await worker("w");
  const sealed = await sealRequest(enc.encode('{"messages":[{"role":"user","content":"hi"}]}'), [recipientOf(w)], meta);
  const one = await openRequest(sealed.bytes, w, meta);
  const two = await openRequest(sealed.bytes, w, meta);
  assert.equal(one.requestDigest, two.requestDigest);
  assert.deepEqual(one.replayId, two.replayId, "both openings report the same replay id");
  const text = enc.encode("the same answer text, twice");
  const a = one.responder.sealChunk(text, false);
  const b = two.responder.sealChunk(text, false);
  const ctA = a.subarray(FIRST_CHUNK_HEADER_BYTES, FIRST_CHUNK_HEADER_BYTES + text.length);
  const ctB = b.subarray(FIRST_CHUNK_HEADER_BYTES, FIRST_CHUNK_HEADER_BYTES + text.length);
  // Same plaintext, same seq: with a shared key and nonce the ciphertexts (and so the keystreams) would be equal.
  assert.notDeepEqual(ctA, ctB, "the first ciphertext bytes differ");
  assert.notDeepEqual(a.subarray(5, 5 + RESPONSE_SALT_BYTES), b.subarray(5, 5 + RESPONSE_SALT_BYTES), "each answer has its own salt");
  // Later chunks too (same seq 1, same plaintext).
  assert.notDeepEqual(one.responder.sealChunk(text, true).subarray(CHUNK_HEADER_BYTES), two.responder.sealChunk(text, true).subarray(CHUNK_HEADER_BYTES));
  // The client opens whichever answer it is relayed; a chunk of the other answer is refused (different key).
  assert.equal(dec.decode(sealed.opener.openChunk(a).data), "the same answer text, twice");
  const b1 = (await openRequest(sealed.bytes, w, meta)).responder;
  b1.sealChunk(text, false);
  assert.throws(() => sealed.opener.openChunk(b1.sealChunk(text, true)), /seq 1 failed authentication/);
});

test("chunk layout: chunk 0 carries the salt in clear (flag 0x02, bytes 5..37, in the AAD); keys = HKDF(secret, salt)", async () => {
  const responseSecret = randomBytes(RESPONSE_SECRET_BYTES);
  const sealer = new ResponseSealer("w", "00".repeat(32), responseSecret);
  const data = [enc.encode("first"), enc.encode("second")];
  const c0 = sealer.sealChunk(data[0], false);
  const c1 = sealer.sealChunk(data[1], true);
  assert.equal(c0.byteLength, FIRST_CHUNK_OVERHEAD_BYTES + data[0].length);
  assert.equal(c1.byteLength, CHUNK_OVERHEAD_BYTES + data[1].length);
  assert.equal(c0[0], CHUNK_FLAG_SALTED);
  assert.equal(c1[0], CHUNK_FLAG_FINAL);
  // Independent derivation, as docs/security.md 3.3 writes it: HKDF-Extract(salt, secret) then one Expand block.
  const salt = c0.subarray(CHUNK_HEADER_BYTES, FIRST_CHUNK_HEADER_BYTES);
  const prk = createHmac("sha256", salt).update(responseSecret).digest();
  const okm = createHmac("sha256", prk).update("cocoon/v1 response keys").update(Uint8Array.of(1)).digest().subarray(0, 28);
  assert.deepEqual(saltedResponseKeys(responseSecret, salt), { key: okm.subarray(0, 16), nonceBase: okm.subarray(16, 28) });
  assert.deepEqual(Buffer.from(hkdfSync("sha256", responseSecret, salt, "cocoon/v1 response keys", 28)), okm, "node's HKDF agrees");
  const open = (c: Uint8Array, headerBytes: number, seq: number) => {
    const nonce = Buffer.from(okm.subarray(16, 28));
    nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
    const d = createDecipheriv("aes-128-gcm", okm.subarray(0, 16), nonce);
    d.setAAD(c.subarray(0, headerBytes));
    d.setAuthTag(c.subarray(c.length - 16));
    return Buffer.concat([d.update(c.subarray(headerBytes, c.length - 16)), d.final()]);
  };
  assert.equal(open(c0, FIRST_CHUNK_HEADER_BYTES, 0).toString(), "first");
  assert.equal(open(c1, CHUNK_HEADER_BYTES, 1).toString(), "second");
  // The step-1 secret is the HPKE export of the recipient's context over label || request digest.
  const exporterSecret = randomBytes(32);
  assert.deepEqual(
    deriveResponseSecret(exporterSecret, Buffer.alloc(32, 7)),
    hpkeExport(exporterSecret, Buffer.concat([Buffer.from("cocoon/v1 response"), Buffer.alloc(32, 7)]), 32),
  );
});

test("chunk 0 without its salt, a salt on a later chunk, or a changed salt is refused", async () => {
  const w = await worker("w");
  const fresh = async () => {
    const { sealed, opened } = await exchange([w]);
    return { opener: sealed.opener, chunks: sealAnswer(opened.responder, ["a", "bb", "ccc"]) };
  };
  {
    const { opener, chunks } = await fresh();
    const noSalt = chunks[0].slice();
    noSalt[0] &= ~CHUNK_FLAG_SALTED;
    assert.throws(() => opener.openChunk(noSalt), /seq 0 carries no response salt.*older build/);
  }
  {
    const { opener, chunks } = await fresh();
    const otherSalt = chunks[0].slice();
    otherSalt[CHUNK_HEADER_BYTES + 3] ^= 0x10;
    assert.throws(() => opener.openChunk(otherSalt), /seq 0 failed authentication/);
  }
  {
    const { opener, chunks } = await fresh();
    opener.openChunk(chunks[0]);
    const salted = chunks[1].slice();
    salted[0] |= CHUNK_FLAG_SALTED;
    assert.throws(() => opener.openChunk(salted), /seq 1 has the salt flag set/);
  }
  {
    // An old-format chunk 0 (5-byte header, no salt) from an un-upgraded worker gets the upgrade hint, not a crash.
    const { opener } = await fresh();
    assert.throws(() => opener.openChunk(new Uint8Array(CHUNK_OVERHEAD_BYTES + 3)), /seq 0 carries no response salt/);
  }
});

test("a colluding candidate that re-encrypts the body (it knows the content key) makes a new digest but the same replay id", async () => {
  const [a, b] = await Promise.all(["a", "b"].map(worker));
  const sealed = await sealRequest(enc.encode("prompt"), [recipientOf(a), recipientOf(b)], meta);
  // Candidate b unwraps the content key K from its own entry...
  const env = decodeSealedRequest(sealed.bytes);
  const info = Buffer.concat([Buffer.from("cocoon/v1 content-key"), lengthPrefixed16(enc.encode(meta.requestId)), lengthPrefixed16(enc.encode(meta.model))]);
  const k = hpkeOpenBase(prepareRecipientKey(b.hpkePrivateKey), env.recipients[1].enc, info, lengthPrefixed16(enc.encode("b")), env.recipients[1].wrappedKey).plaintext;
  // ...and re-encrypts the body under a new content nonce: a different envelope that worker a still opens.
  const plain = (await openRequest(sealed.bytes, b, meta)).body;
  const headerFields = { ...env, nonce: new Uint8Array(randomBytes(12)) };
  const header = encodeSealedRequestHeader(headerFields, plain.length + 16);
  const c = createCipheriv("aes-128-gcm", k, headerFields.nonce);
  c.setAAD(Buffer.concat([Buffer.from("cocoon/v1 request"), lengthPrefixed16(enc.encode(meta.requestId)), lengthPrefixed16(enc.encode(meta.model)), header]));
  const forged = Buffer.concat([header, c.update(plain), c.final(), c.getAuthTag()]);
  const original = await openRequest(sealed.bytes, a, meta);
  const reencrypted = await openRequest(forged, a, meta);
  assert.notEqual(reencrypted.requestDigest, original.requestDigest, "a digest-keyed cache would miss it");
  assert.deepEqual(reencrypted.replayId, original.replayId, "the replay id (the HPKE enc) catches it");
});
