import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import {
  assertReceiptAcceptable,
  buildReceipt,
  checkReceiptAgainst,
  COMPLETION_SLACK_TOKENS,
  decodeReceipt,
  encodeReceipt,
  generateReceiptKeyPair,
  judgeReceipt,
  parseSignedReceipt,
  type ReceiptExpectations,
  signReceipt,
  type UsageReceipt,
  verifyReceipt,
} from "../../src/crypto/receipts.js";
import { generateHpkeKeyPair, openRequest, ResponseDigest, sealRequest } from "../../src/crypto/seal.js";

const hex = (s: string) => createHash("sha256").update(s).digest("hex");
const worker = generateReceiptKeyPair();

function receipt(over: Partial<UsageReceipt> = {}): UsageReceipt {
  return {
    v: 1,
    requestId: "req-42",
    model: "Qwen/Qwen3-8B",
    workerId: "worker-a",
    promptTokens: 120,
    completionTokens: 200,
    costNano: "6400000",
    requestDigest: hex("request"),
    responseDigest: hex("response"),
    ...over,
  };
}

function expectations(over: Partial<ReceiptExpectations> = {}): ReceiptExpectations {
  return {
    requestId: "req-42",
    model: "Qwen/Qwen3-8B",
    maxTokens: 256,
    requestDigest: hex("request"),
    responseDigest: hex("response"),
    workerPublicKey: worker.publicKey,
    workerId: "worker-a",
    receivedTextChars: 800,
    ...over,
  };
}

const codes = (signed: ReturnType<typeof signReceipt>, e = expectations()) => checkReceiptAgainst(signed, e).map((v) => v.code);

test("canonical encoding round trips, is deterministic, and starts with the domain separator", () => {
  const r = receipt({ costNano: "340282366920938463463374607431768211455", model: "модель/🙂" });
  const bytes = encodeReceipt(r);
  assert.deepEqual(encodeReceipt({ ...r }), bytes);
  assert.deepEqual(decodeReceipt(bytes), r);
  assert.equal(Buffer.from(bytes.subarray(0, 23)).toString("ascii"), "cocoon/v1 usage-receipt");
  // Field order in the object does not matter; values do.
  const reordered = Object.fromEntries(Object.entries(r).reverse()) as unknown as UsageReceipt;
  assert.notEqual(Object.keys(reordered)[0], Object.keys(r)[0]);
  assert.deepEqual(encodeReceipt(reordered), bytes);
  assert.notDeepEqual(encodeReceipt({ ...r, completionTokens: 201 }), bytes);
});

test("a signed receipt verifies with the worker key and survives JSON transport", () => {
  const signed = signReceipt(receipt(), worker.privateKey);
  assert.ok(verifyReceipt(signed, worker.publicKey));
  const overWire = parseSignedReceipt(JSON.parse(JSON.stringify(signed)));
  assert.ok(verifyReceipt(overWire, worker.publicKey));
  assert.deepEqual(checkReceiptAgainst(overWire, expectations()), []);
  assert.deepEqual(assertReceiptAcceptable(overWire, expectations()), receipt());
  assert.ok(!verifyReceipt(signed, generateReceiptKeyPair().publicKey), "another worker's key must not verify");
});

test("tampering with any field or the signature breaks verification", () => {
  const signed = signReceipt(receipt(), worker.privateKey);
  const tampered: Partial<UsageReceipt>[] = [
    { requestId: "req-43" },
    { model: "other/model" },
    { workerId: "worker-b" },
    { promptTokens: 121 },
    { completionTokens: 199 },
    { costNano: "6400001" },
    { requestDigest: hex("x") },
    { responseDigest: hex("y") },
  ];
  for (const t of tampered) {
    const forged = { ...signed, receipt: { ...signed.receipt, ...t } };
    assert.ok(!verifyReceipt(forged, worker.publicKey), `tampered ${Object.keys(t)[0]} still verified`);
    assert.ok(codes(forged).includes("bad-signature"));
  }
  const sig = Buffer.from(signed.signature, "hex");
  sig[10] ^= 1;
  assert.ok(!verifyReceipt({ ...signed, signature: sig.toString("hex") }, worker.publicKey));
  assert.ok(!verifyReceipt({ ...signed, signature: "zz" }, worker.publicKey));
  assert.deepEqual(codes({ ...signed, signature: "zz" }), ["malformed"]);
});

test("over-reporting is refused: above max_tokens, implausible against received text, prompt, or cost cap", () => {
  const over = signReceipt(receipt({ completionTokens: 257 }), worker.privateKey);
  assert.deepEqual(codes(over), ["completion-over-max-tokens"]);
  const v = checkReceiptAgainst(over, expectations())[0];
  assert.match(v.message, /257 completion tokens but max_tokens was 256: over-reporting/);

  // 200 tokens for 50 characters is not plausible; 50 + slack is.
  assert.deepEqual(codes(signReceipt(receipt(), worker.privateKey), expectations({ receivedTextChars: 50 })), ["completion-implausible"]);
  const edge = signReceipt(receipt({ completionTokens: 50 + COMPLETION_SLACK_TOKENS }), worker.privateKey);
  assert.deepEqual(codes(edge, expectations({ receivedTextChars: 50 })), []);
  const edge1 = signReceipt(receipt({ completionTokens: 51 + COMPLETION_SLACK_TOKENS }), worker.privateKey);
  assert.deepEqual(codes(edge1, expectations({ receivedTextChars: 50 })), ["completion-implausible"]);

  const bigPrompt = signReceipt(receipt({ promptTokens: 5000 }), worker.privateKey);
  assert.deepEqual(codes(bigPrompt, expectations({ promptChars: 400, promptMessages: 2 })), ["prompt-implausible"]);
  assert.deepEqual(codes(bigPrompt, expectations({ promptChars: 20000 })), []);

  assert.throws(() => assertReceiptAcceptable(over, expectations()), /usage receipt refused: \[completion-over-max-tokens\]/);
});

test("mismatched request, model, worker or digests are each reported", () => {
  const signed = signReceipt(receipt(), worker.privateKey);
  assert.deepEqual(
    codes(
      signed,
      expectations({ requestId: "r2", model: "m2", workerId: "w2", requestDigest: hex("a"), responseDigest: hex("b") }),
    ),
    ["request-id-mismatch", "model-mismatch", "worker-mismatch", "request-digest-mismatch", "response-digest-mismatch"],
  );
  assert.deepEqual(codes(signed, expectations({ workerPublicKey: generateReceiptKeyPair().publicKey })), ["bad-signature"]);
  assert.match(checkReceiptAgainst(signed, expectations({ workerPublicKey: new Uint8Array(3) }))[0].message, /32 raw Ed25519 bytes/);
});

test("end to end: worker signs digests of the real sealed traffic; client and proxy accept; a lying worker is refused", async () => {
  const hpke = await generateHpkeKeyPair();
  const me = { workerId: "worker-a", hpkePrivateKey: hpke.privateKey, hpkePublicKey: hpke.publicKey };
  const meta = { requestId: "req-42", model: "Qwen/Qwen3-8B" };
  const sealed = await sealRequest(new TextEncoder().encode("prompt"), [{ workerId: "worker-a", hpkePublicKey: hpke.publicKey }], meta);
  const opened = await openRequest(sealed.bytes, me, meta);
  const usage = { requestId: "req-42", model: "Qwen/Qwen3-8B", promptTokens: 1, completionTokens: 1, costNano: "1" };
  assert.throws(() => buildReceipt(opened.responder, usage), /seal the final chunk before building the receipt/);
  const text = ["The answer ", "is 42."];
  const chunks = text.map((t, i) => opened.responder.sealChunk(new TextEncoder().encode(t), i === text.length - 1));
  const proxyDigest = new ResponseDigest();
  let received = "";
  for (const c of chunks) {
    proxyDigest.update(c); // proxy relays ciphertext only
    received += new TextDecoder().decode(sealed.opener.openChunk(c).data);
  }
  const honest = signReceipt(
    buildReceipt(opened.responder, { requestId: "req-42", model: "Qwen/Qwen3-8B", promptTokens: 120, completionTokens: 7, costNano: 6400000n }),
    worker.privateKey,
  );
  assert.equal(honest.receipt.workerId, "worker-a");
  assert.equal(honest.receipt.costNano, "6400000");
  const base = { requestDigest: sealed.requestDigest, responseDigest: sealed.opener.responseDigest };
  // Proxy view: what it forwarded and relayed.
  assert.deepEqual(checkReceiptAgainst(honest, expectations({ ...base, responseDigest: proxyDigest.hex(), receivedTextChars: undefined })), []);
  // Client view: adds the answering worker and the received text size.
  assert.deepEqual(
    checkReceiptAgainst(honest, expectations({ ...base, workerId: sealed.opener.workerId, receivedTextChars: received.length })),
    [],
  );
  const liar = signReceipt(receipt({ completionTokens: 200, ...base }), worker.privateKey);
  assert.deepEqual(codes(liar, expectations({ ...base, receivedTextChars: received.length })), ["completion-implausible"]);
  // A receipt whose response digest skips the last chunk is caught.
  const partial = new ResponseDigest();
  partial.update(chunks[0]);
  const short = signReceipt(receipt({ completionTokens: 7, ...base, responseDigest: partial.hex() }), worker.privateKey);
  assert.deepEqual(codes(short, expectations({ ...base, receivedTextChars: received.length })), ["response-digest-mismatch"]);
});

test("invalid receipts are refused with clear messages before signing", () => {
  const key = worker.privateKey;
  assert.throws(() => signReceipt(receipt({ costNano: "01" }), key), /costNano must be a decimal string/);
  assert.throws(() => signReceipt(receipt({ costNano: "-1" }), key), /costNano/);
  assert.throws(() => signReceipt(receipt({ costNano: (1n << 128n).toString() }), key), /below 2\^128/);
  assert.throws(() => signReceipt(receipt({ promptTokens: -1 }), key), /promptTokens must be a non-negative safe integer/);
  assert.throws(() => signReceipt(receipt({ completionTokens: 1.5 }), key), /completionTokens/);
  assert.throws(() => signReceipt(receipt({ requestDigest: "AB".repeat(32) }), key), /requestDigest must be 64 lowercase hex/);
  assert.throws(() => signReceipt(receipt({ model: "" }), key), /model must be 1\.\.256/);
  assert.throws(() => signReceipt(receipt({ workerId: "w\uD83D" }), key), /workerId contains a lone surrogate/);
  assert.throws(() => signReceipt({ ...receipt(), extra: 1 } as UsageReceipt, key), /unknown field "extra"/);
  assert.throws(() => signReceipt(receipt(), generateKeyPairSync("x25519").privateKey), /Ed25519 private KeyObject/);
});

test("fuzz: decodeReceipt and parseSignedReceipt turn random input into a clear Error", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      assert.throws(() => decodeReceipt(bytes), /^Error: usage receipt: /);
    }),
    { numRuns: 2000 },
  );
  const good = encodeReceipt(receipt());
  fc.assert(
    fc.property(fc.nat({ max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), fc.boolean(), (pos, xor, cut) => {
      const bad = cut ? good.slice(0, pos) : good.slice();
      if (!cut) bad[pos] ^= xor;
      try {
        const r = decodeReceipt(bad);
        // A flip inside a value field may still decode: then it must decode to a different receipt.
        assert.notDeepEqual(r, receipt());
      } catch (e) {
        assert.ok(e instanceof Error && e.message.startsWith("usage receipt: "), String(e));
      }
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.anything(), (value) => {
      assert.throws(() => parseSignedReceipt(value), /^Error: usage receipt: /);
      assert.throws(() => parseSignedReceipt({ receipt: value, signature: "00".repeat(64) }), /^Error: usage receipt: /);
    }),
    { numRuns: 1000 },
  );
  const signed = signReceipt(receipt(), worker.privateKey);
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(receipt())), fc.anything(), (field, value) => {
      const mutated = { ...signed, receipt: { ...signed.receipt, [field]: value } };
      // Either refused as malformed or, if still well formed, refused by the signature.
      assert.equal(verifyReceipt(mutated as never, worker.publicKey), JSON.stringify(value) === JSON.stringify((signed.receipt as never)[field]));
    }),
    { numRuns: 1000 },
  );
});

test("one judgment for proxy and client: the same facts give the same verdict; a signed price that differs from the billed one, or usage reported apart from the signed receipt, is refused", () => {
  const signed = signReceipt(receipt({ completionTokens: 20, promptTokens: 100, costNano: "7000000" }), worker.privateKey);
  const facts = {
    requestId: "req-42", model: "Qwen/Qwen3-8B", maxTokens: 256, requestDigest: hex("request"), responseDigest: hex("response"), workerId: "worker-a",
    sealedRequestBytes: 400, sealedAnswerBytes: 120, billedCostNano: 7_000_000n,
  };
  const reported = { prompt_tokens: 100, completion_tokens: 20 };
  // What the proxy holds (relayed bytes, its price) and what the client holds (received bytes, the trailer's price)
  // are the same numbers, so both accept...
  assert.equal(judgeReceipt(signed, facts, [worker.publicKey], reported), undefined);
  // ...and both refuse the same receipts:
  assert.match(judgeReceipt(signed, { ...facts, billedCostNano: 7_000_001n }, [worker.publicKey], reported)!, /prices the usage at 7000000 nanoTON but it is billed at 7000001/);
  assert.match(judgeReceipt(signed, facts, [worker.publicKey], { prompt_tokens: 100, completion_tokens: 21 })!, /usage reported differs from the worker's signed receipt/);
  assert.match(judgeReceipt(signed, facts, [worker.publicKey], { prompt_tokens: 101, completion_tokens: 20 })!, /usage reported differs/);
  // Plausibility from sizes both see: more completion tokens than sealed answer bytes (+ slack) is over-reporting.
  assert.match(judgeReceipt(signed, { ...facts, sealedAnswerBytes: 20 - COMPLETION_SLACK_TOKENS - 1 }, [worker.publicKey], reported)!, /completion tokens for an answer of/);
  assert.match(judgeReceipt(signed, { ...facts, sealedRequestBytes: 10 }, [worker.publicKey], reported)!, /prompt tokens for a request of 10 sealed bytes/);
  // A worker without a price book signs 0: nothing to compare.
  const unpriced = signReceipt(receipt({ completionTokens: 20, promptTokens: 100, costNano: "0" }), worker.privateKey);
  assert.equal(judgeReceipt(unpriced, facts, [worker.publicKey], reported), undefined);
});
