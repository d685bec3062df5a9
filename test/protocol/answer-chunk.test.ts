import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeAnswerChunk, encodeAnswerChunk } from "../../src/protocol/answer-chunk.js";
import { StreamError } from "../../src/protocol/connection.js";

test("answer chunks round-trip any batch of deltas, final or not", () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: "grapheme" }), { maxLength: 20 }), fc.option(fc.constantFrom("stop", "length")), (deltas, finish) => {
      assert.deepEqual(decodeAnswerChunk(encodeAnswerChunk(deltas, finish ?? undefined)), deltas);
    }),
  );
});

test("answer chunk decoder: random bytes and wrong shapes give a clear StreamError, never a crash", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        assert.ok(Array.isArray(decodeAnswerChunk(bytes)));
      } catch (e) {
        assert.ok(e instanceof StreamError && e.code === "worker_failed" && /malformed chunk/.test(e.message), String(e));
      }
    }),
    { numRuns: 500 },
  );
  for (const bad of ['{"text":"old format"}', '{"deltas":"x"}', '{"deltas":[1]}', "null", "[]", '{"deltas":[null]}']) {
    assert.throws(() => decodeAnswerChunk(Buffer.from(bad)), (e: unknown) => e instanceof StreamError && /expected \{"deltas"/.test(e.message), bad);
  }
});
