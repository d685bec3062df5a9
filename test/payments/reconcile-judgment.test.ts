// Reconciliation at the client: the proxy lists charged answers whose end this client never saw. The client pays one
// only when a worker it sealed the request to signed a receipt for exactly that request, usage and cost; every other
// listed charge is disputed (with the reason) and nothing is signed for it. Driven directly against a fake proxy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Address } from "@ton/core";
import { ClientPayer } from "../../src/payments/client-payer.js";
import { Ledger } from "../../src/payments/ledger.js";
import { ed25519Signer } from "../../src/chain/vouchers.js";
import { generateReceiptKeyPair, signReceipt, type UsageReceipt } from "../../src/crypto/receipts.js";
import { parseMessage, paymentsReplySchema, type PaymentsReply, type PaymentsRequest } from "../../src/protocol/messages.js";

const MODEL = "fake-model";
const hex = (s: string) => createHash("sha256").update(s).digest("hex");

test("reconciliation pays only what a receipt of the sealed-to worker proves; every other charge is disputed", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-reconcile-judgment-"));
  const worker = generateReceiptKeyPair();
  const stranger = generateReceiptKeyPair();
  const payer = new ClientPayer({
    channel: new Address(0, Buffer.alloc(32, 1)), proxyContract: new Address(0, Buffer.alloc(32, 2)), signer: ed25519Signer(randomBytes(32)),
    ledger: Ledger.open(join(dir, "client.sqlite")), clientId: "client", globalId: -217, flushDelayMs: 1, closeLedger: true,
  });
  let answers: Record<string, unknown>[] = [];
  const disputes: { requestId: string; reason: string }[] = [];
  // A stand-in proxy's payments replies, checked against the wire schema as the client checks every reply.
  const view = { ok: true, channel: "channel", capacity: "1000000", signed: "0", charged: "0", owed: "0", redeemed: "0" };
  const proxy = async (body: PaymentsRequest): Promise<PaymentsReply> => {
    let reply: Record<string, unknown> = view;
    if (body.type === "reconcile") reply = { ...view, answers };
    if (body.type === "dispute") disputes.push(...body.requests);
    return parseMessage(paymentsReplySchema, reply, "payments reply");
  };
  try {
    await payer.onConnected(proxy, "ab".repeat(32));
    /** A request this client sent and lost the end of; the proxy lists it with `answer` (a signed receipt by default). */
    const lost = (id: string, over: { receipt?: Partial<UsageReceipt>; key?: typeof worker; answer?: Record<string, unknown>; track?: boolean } = {}) => {
      if (over.track !== false) {
        payer.track(id, { model: MODEL, maxTokens: 50, requestDigest: hex(`request ${id}`), receiptKeys: [worker.publicKey] });
        payer.abandon(id);
      }
      const r: UsageReceipt = {
        v: 1, requestId: id, model: MODEL, workerId: "w1", promptTokens: 10, completionTokens: 20, costNano: "900",
        requestDigest: hex(`request ${id}`), responseDigest: hex(`response ${id}`), ...over.receipt,
      };
      const signed = JSON.parse(JSON.stringify(signReceipt(r, (over.key ?? worker).privateKey)));
      return { requestId: id, model: MODEL, promptTokens: 10, completionTokens: 20, cost: "900", receipt: signed, ...over.answer };
    };
    const reconcile = async (a: Record<string, unknown>) => {
      answers = [a];
      disputes.length = 0;
      const before = payer.spent;
      await payer.reconcile();
      return { paid: payer.spent - before, reasons: disputes.map((d) => d.reason) };
    };

    // Control: a genuine receipt is paid, and nothing is disputed.
    assert.deepEqual(await reconcile(lost("genuine")), { paid: 900n, reasons: [] });

    const refused: [string, Record<string, unknown>, RegExp][] = [
      ["signed by a worker the request was not sealed to", lost("stranger", { key: stranger }), /not signed by a worker the request was sealed to/],
      ["a receipt of another request", lost("swapped", { receipt: { requestId: "genuine" } }), /for another request/],
      ["a receipt for other request bytes", lost("other-bytes", { receipt: { requestDigest: hex("something else") } }), /for another request/],
      ["more completion tokens than max_tokens", lost("too-long", { receipt: { completionTokens: 51 }, answer: { completionTokens: 51 } }), /for max_tokens 50/],
      ["usage charged above the receipt's", lost("inflated", { answer: { promptTokens: 1_000 } }), /charged usage differs from the worker's receipt/],
      ["a cost above the receipt's", lost("overpriced", { answer: { cost: "901" } }), /prices it at 900, the proxy charged 901/],
      ["no receipt at all", lost("no-receipt", { answer: { receipt: undefined } }), /no valid worker receipt/],
      ["a request this client never sent", lost("never-sent", { track: false }), /no record of an unsettled request/],
    ];
    for (const [what, answer, reason] of refused) {
      const r = await reconcile(answer);
      assert.equal(r.paid, 0n, `${what}: nothing is paid`);
      assert.equal(r.reasons.length, 1, `${what}: disputed`);
      assert.match(r.reasons[0]!, reason, what);
    }
    const rec = payer.status().reconciliation as { paid: number; disputed: number };
    assert.deepEqual([rec.paid, rec.disputed], [1, refused.length]);
    assert.equal(payer.signed, 900n, "the client signed for the genuine answer only");
  } finally {
    await payer.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
