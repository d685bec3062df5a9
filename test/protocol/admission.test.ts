// The checks an inference head passes at proxy and worker (src/protocol/admission.ts): each rule refuses with the
// code the sender acts on, in order, and random heads are refused with bad_request, never a crash.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { admitInferenceHead, type HeadRules } from "../../src/protocol/admission.js";
import type { ErrorCode } from "../../src/protocol/errors.js";

/** The two things the helper uses of a stream: its head, and reset (recorded here). */
function streamWith(head: unknown) {
  const resets: { code: ErrorCode; message: string }[] = [];
  return { head: head as Record<string, unknown> | undefined, reset: (code: ErrorCode, message: string) => void resets.push({ code, message }), resets };
}

const rules = (over: Partial<HeadRules> = {}): HeadRules => ({
  inFlight: 0,
  limit: 2,
  overloaded: (limit) => `full at ${limit}`,
  running: new Set<string>(),
  duplicate: (id) => `duplicate ${id}`,
  ...over,
});

const head = { op: "inference", requestId: "r1", endpoint: "chat", model: "m", maxTokens: 16, bodyBytes: 10 };

test("a well-formed head passes and comes back typed; nothing is reset", () => {
  const s = streamWith({ ...head, sealed: true });
  const h = admitInferenceHead(s, rules({ sealedOnly: "sealed only" }));
  assert.equal(h?.requestId, "r1");
  assert.equal(h?.sealed, true);
  assert.deepEqual(s.resets, []);
});

test("each rule refuses with its code and sentence", () => {
  const cases: [unknown, Partial<HeadRules>, ErrorCode, RegExp][] = [
    [{ ...head, maxTokens: 0 }, {}, "bad_request", /^malformed inference head: maxTokens/],
    [{ ...head, op: "models" }, {}, "bad_request", /^malformed inference head: op/],
    [head, { sealedOnly: "sealed only" }, "bad_request", /^sealed only$/],
    [head, { inFlight: 2 }, "overloaded", /^full at 2$/],
    [head, { running: new Set(["r1"]) }, "bad_request", /^duplicate r1$/],
  ];
  for (const [h, over, code, message] of cases) {
    const s = streamWith(h);
    assert.equal(admitInferenceHead(s, rules(over)), undefined, JSON.stringify(h));
    assert.equal(s.resets.length, 1);
    assert.equal(s.resets[0]!.code, code);
    assert.match(s.resets[0]!.message, message);
  }
  // Below the limit and with another id running, it passes.
  assert.ok(admitInferenceHead(streamWith(head), rules({ inFlight: 1, running: new Set(["r2"]) })));
});

test("fuzz: random heads are admitted well-formed or refused with bad_request, never thrown", () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.record({ op: fc.constant("inference"), requestId: fc.string(), endpoint: fc.string(), model: fc.string(), maxTokens: fc.jsonValue(), bodyBytes: fc.jsonValue() }, { requiredKeys: [] })), (h) => {
      const s = streamWith(h);
      const admitted = admitInferenceHead(s, rules());
      if (admitted) {
        assert.equal(s.resets.length, 0);
        assert.ok(Number.isInteger(admitted.maxTokens) && admitted.maxTokens >= 1);
      } else {
        assert.equal(s.resets.length, 1);
        assert.equal(s.resets[0]!.code, "bad_request");
      }
    }),
    { numRuns: 500 },
  );
});
