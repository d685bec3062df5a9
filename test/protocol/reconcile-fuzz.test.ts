// Untrusted payments replies (a proxy may lie or send garbage): random JSON is refused with a clear Error, never a
// crash and never a half-parsed answer list or a balance that is not a nanoTON amount.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { parseMessage, paymentsReplySchema } from "../../src/protocol/messages.js";

const view = { ok: true, channel: "EQ-channel", capacity: "1000", signed: "30", charged: "30", owed: "0", redeemed: "0" };

test("fuzz: random JSON as a payments reply parses or is refused with a clear Error", () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.jsonValue(),
        fc.record({ answers: fc.array(fc.jsonValue(), { maxLength: 5 }) }),
        fc.record({ answers: fc.array(fc.jsonValue(), { maxLength: 5 }), signed: fc.oneof(fc.string(), fc.jsonValue()) }).map((r) => ({ ...view, ...r })),
      ),
      (v) => {
        try {
          const r = parseMessage(paymentsReplySchema, v, "payments reply");
          assert.match(r.signed, /^(0|[1-9][0-9]*)$/);
          assert.match(r.charged, /^(0|[1-9][0-9]*)$/);
          for (const a of r.answers ?? []) {
            assert.equal(typeof a.requestId, "string");
            assert.ok(Number.isSafeInteger(a.promptTokens) && a.promptTokens >= 0);
            assert.match(a.cost, /^(0|[1-9][0-9]*)$/);
          }
        } catch (err) {
          assert.ok(err instanceof Error && /^malformed payments reply: /.test(err.message), String(err));
        }
      },
    ),
    { numRuns: 500 },
  );
  // A well-formed one passes through; a negative or fractional balance does not.
  const ok = parseMessage(paymentsReplySchema, { ...view, answers: [{ requestId: "r", model: "m", promptTokens: 1, completionTokens: 2, cost: "30" }] }, "payments reply");
  assert.equal(ok.answers![0]!.cost, "30");
  assert.throws(() => parseMessage(paymentsReplySchema, { ...view, signed: "-5" }, "payments reply"), /malformed payments reply: .*signed/);
  assert.throws(() => parseMessage(paymentsReplySchema, { ...view, charged: "1.5" }, "payments reply"), /malformed payments reply: .*charged/);
});
