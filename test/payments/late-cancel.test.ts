// Nothing stuck after a cancel: the app may leave at any moment (before the answer starts, midway, right after the
// last token, while the final chunk is in flight), and client and proxy still settle every request the same way.
// The old failure: a late cancel let the proxy charge an answer the client never signed, and every later request got
// "402 previous voucher missing" for good (issues #11 and #21).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sessionBinding } from "../../src/protocol/session-binding.js";
import { chatJson, startChain, startPaidNetwork, MODEL } from "./settlement-fixture.js";

const TOKENS = 12;

/** Streams a chat answer and aborts once `after` content deltas arrived (0: as soon as the headers came). */
async function abortAfter(url: string, after: number): Promise<{ deltas: number; cost?: bigint }> {
  const ac = new AbortController();
  const r = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "tell me a story" }], max_tokens: 40, stream: true, stream_options: { include_usage: true } }),
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  let deltas = 0;
  let cost: bigint | undefined;
  let buf = "";
  const decoder = new TextDecoder();
  try {
    if (after === 0) ac.abort();
    for await (const part of r.body!) {
      buf += decoder.decode(part as Uint8Array, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!ev.startsWith("data: ") || ev.includes("[DONE]")) continue;
        const j = JSON.parse(ev.slice(6));
        if (j.usage?.total_cost !== undefined) cost = BigInt(j.usage.total_cost);
        if (j.choices?.[0]?.delta?.content) deltas++;
        if (deltas >= after) {
          ac.abort();
          return { deltas, cost };
        }
      }
    }
  } catch (err) {
    if ((err as Error).name !== "AbortError") throw err;
  }
  return { deltas, cost };
}

async function until(what: string, cond: () => boolean, ms = 5_000, detail?: () => string): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}${detail ? `: ${detail()}` : ""}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("cancels at any moment: client and proxy settle every request the same way, cancelled answers are billed for what was produced, and no 402 follows", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-cancel-"));
  const chain = await startChain(dir);
  // Everything the proxy sends, decrypted (to check what workers learn about the client).
  const sentByProxy: Buffer[] = [];
  const p = await startPaidNetwork(chain, { upstream: { tokens: TOKENS, tokenDelayMs: 3 }, tap: (dir, data) => dir === "out" && sentByProxy.push(Buffer.from(data)) });
  try {
    const { net, meter, payer } = p;
    meter.voucherGraceMs = 0; // the strict rule: no allowance for vouchers on the way
    const num = (v: unknown) => BigInt(v as string);
    let appSaw = 0n;
    // Right after the last token (the old race), midway, at once, and every point in between, twice over.
    const points = [TOKENS, TOKENS, 0, 1, ...Array.from({ length: TOKENS }, (_, i) => i + 1), TOKENS, TOKENS - 1, 0];
    for (const after of points) {
      const r = await abortAfter(net.client.url, after);
      if (r.cost !== undefined) appSaw += r.cost;
    }
    // Every cancelled request was settled on both sides: the client's voucher covers exactly what the proxy charged.
    await until("the client to sign every cancelled answer", () => (net.client.statusJson().requests as { total: number; cancelled: number; cancelledBilled: number; completed: number }).cancelledBilled + (net.client.statusJson().requests as { cancelled: number }).cancelled >= points.length, 5_000, () => JSON.stringify([net.client.statusJson().requests, net.proxy.statusJson().requests, net.workers[0]!.statusJson().requests]));
    await until("the proxy to hold the newest voucher", () => num(meter.status().signed) === num(meter.status().charged));
    const cs = payer.status() as { spent: string; signed: string };
    const costs = net.client.statusJson().costs as { delivered: { nano: string }; cancelledByApp: { count: number; nano: string } };
    const ps = meter.status();
    assert.equal(num(cs.spent), num(ps.charged), "client spent = proxy charged");
    assert.equal(num(cs.signed), num(ps.charged), "client signed = proxy charged");
    assert.equal(num(costs.delivered.nano) + num(costs.cancelledByApp.nano), num(cs.spent), "costs in answers + answers the app left = client spent");
    assert.ok(appSaw <= num(costs.delivered.nano), "the app saw no cost the client did not put in an answer");
    assert.equal(num(ps.workersEarned) + num(ps.fees), num(ps.charged), "worker credit + proxy fee = proxy charged");
    assert.ok(costs.cancelledByApp.count > 0 && num(costs.cancelledByApp.nano) > 0n, "cancelled answers that produced tokens are billed");
    // No debt is left that the client cannot act on: the next small request is served at once.
    const next = await chatJson(net.client.url, "and then?", { max_tokens: 5 });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    // A worker sees nothing of the client's payments: no channel, no voucher, no candidate list in what it receives.
    // (The proxy's only outgoing inference heads are those it opens to workers.)
    const out = Buffer.concat(sentByProxy).toString("latin1");
    const heads = out.split('{"op":"inference"').slice(1).map((rest) => rest.slice(0, rest.indexOf("}")));
    assert.equal(heads.length, points.length + 1, "the tap saw every request forwarded to the worker");
    for (const h of heads) for (const field of ['"payment"', '"voucher"', '"channel"', '"candidates"']) assert.ok(!h.includes(field), `the proxy forwarded ${field} to a worker: ${h}`);
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("self-healing: an answer whose end never reached the client is paid on reconciliation; a charge the client cannot verify is disputed and written off; no 402 reaches the app", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-reconcile-"));
  const chain = await startChain(dir);
  let dropNext = false;
  let p: Awaited<ReturnType<typeof startPaidNetwork>> | undefined;
  p = await startPaidNetwork(chain, {
    upstream: { tokens: 6 },
    // The connection to the client breaks right after the proxy settled an answer, before its trailer leaves.
    tamper: { trailer: (t) => {
      if (dropNext) {
        dropNext = false;
        p!.net.client.link.conn?.destroy();
      }
      return t;
    } },
  });
  try {
    const { net, meter, payer } = p;
    meter.voucherGraceMs = 0;
    meter.exposureWaitMs = 300; // how long the proxy waits for a missing voucher before refusing (default 10 s)
    const num = (v: unknown) => BigInt(v as string);
    const ok = await chatJson(net.client.url, "first");
    assert.equal(ok.status, 200);
    dropNext = true;
    const lost = await chatJson(net.client.url, "the answer whose end is lost");
    assert.equal(lost.status, 502, JSON.stringify(lost.body));
    // The proxy charged it; the client learned nothing of its end. Reconnecting, the client sees the difference,
    // checks the worker-signed receipt of a request it sent, and pays it.
    await until("the client to pay the lost answer", () => num(meter.status().signed) === num(meter.status().charged) && num(meter.status().charged) > 0n, 10_000, () => JSON.stringify([meter.status().charged, meter.status().signed, payer.status().reconciliation]));
    const rec = payer.status().reconciliation as { paid: number; disputed: number };
    assert.equal(rec.paid, 1, "the lost answer was paid on reconciliation");
    assert.equal(rec.disputed, 0);
    assert.equal(num(payer.status().spent), num(meter.status().charged));

    // The same while streaming: the app has its headers already and gets the failure in-band; the answer is still
    // settled, by reconciliation (the client keeps asking while it has such requests).
    await until("the client to be connected again", () => net.client.link.connected);
    dropNext = true;
    const streamed = await fetch(`${net.client.url}/v1/chat/completions`, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "a streamed answer whose end is lost" }], max_tokens: 20, stream: true }),
    });
    assert.equal(streamed.status, 200);
    assert.match(await streamed.text(), /"error"/, "the failure is reported in-band");
    await until("the client to pay the lost streamed answer", () => (payer.status().reconciliation as { paid: number }).paid === 2 && num(meter.status().signed) === num(meter.status().charged), 15_000, () => JSON.stringify([meter.status().charged, meter.status().signed, payer.status().reconciliation]));

    // A charge the client cannot verify (here: the proxy records an answer this client never asked for).
    const ctx = { clientId: "paying-client", session: sessionBinding(net.client.link.conn!), insecure: false };
    const head = { op: "inference" as const, requestId: "chatcmpl-not-mine", endpoint: "chat" as const, model: MODEL, maxTokens: 20, bodyBytes: 200 };
    await meter.admit(ctx, head);
    await meter.settle(ctx, head, "w1", { prompt_tokens: 2_000, completion_tokens: 20, total_tokens: 2_020 }); // more than one request may owe
    // The next request is refused with voucher_missing at the proxy; the client reconciles, disputes, and retries.
    const next = await chatJson(net.client.url, "next", { max_tokens: 3 });
    assert.equal(next.status, 200, JSON.stringify(next.body));
    assert.equal((payer.status().reconciliation as { disputed: number }).disputed, 1);
    assert.ok(num(meter.status().writtenOff) > 0n, "the disputed charge was written off at the proxy");
    await until("books to agree", () => num(meter.status().signed) === num(meter.status().charged) - num(meter.status().writtenOff));
    assert.equal(num(payer.status().spent), num(meter.status().charged) - num(meter.status().writtenOff), "client spent = proxy charged - written off");
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a worker over an inflating engine: its receipts are refused by the one judgment, charged to no one, and the client is never locked out", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-inflate-"));
  const chain = await startChain(dir);
  const p = await startPaidNetwork(chain, { upstream: { tokens: 6, inflateUsage: 50 } });
  try {
    const { net, meter, payer } = p;
    meter.voucherGraceMs = 0;
    for (let i = 0; i < 3; i++) {
      const r = await chatJson(net.client.url, `inflated ${i}`, { max_tokens: 100 });
      assert.equal(r.status, 502, "the over-reporting worker's answer is refused, never a 402");
      assert.match(r.body.error.message, /usage receipt.*not billed/);
    }
    assert.equal(BigInt(meter.status().charged as string), 0n, "nothing was charged");
    assert.equal(BigInt(payer.status().spent as string), 0n);
    assert.equal((net.proxy.statusJson().receipts as { refused: number }).refused, 3, "counted against the worker");
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
