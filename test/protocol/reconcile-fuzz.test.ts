// Untrusted reconciliation replies (a proxy may lie or send garbage): random JSON is refused with a clear Error,
// never a crash and never a half-parsed answer list.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseMessage, reconcileReplySchema } from "../../src/protocol/messages.js";

test("fuzz: random JSON as a reconciliation reply parses or is refused with a clear Error", () => {
  fc.assert(
    fc.property(fc.oneof(fc.jsonValue(), fc.record({ answers: fc.array(fc.jsonValue(), { maxLength: 5 }) })), (v) => {
      try {
        const r = parseMessage(reconcileReplySchema, v, "reconciliation reply");
        for (const a of r.answers) {
          assert.equal(typeof a.requestId, "string");
          assert.ok(Number.isSafeInteger(a.promptTokens) && a.promptTokens >= 0);
          assert.match(a.cost, /^(0|[1-9][0-9]*)$/);
        }
      } catch (err) {
        assert.ok(err instanceof Error && /^malformed reconciliation reply: /.test(err.message), String(err));
      }
    }),
    { numRuns: 500 },
  );
  // A well-formed one passes through.
  const ok = parseMessage(reconcileReplySchema, { ok: true, answers: [{ requestId: "r", model: "m", promptTokens: 1, completionTokens: 2, cost: "30" }] }, "reconciliation reply");
  assert.equal(ok.answers[0]!.cost, "30");
});
