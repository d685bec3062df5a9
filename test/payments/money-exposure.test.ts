// Bounded trust in money (issue #18.3, #18.4): the proxy's unsigned exposure to a client stays under a small constant
// however large its deposit and however many requests it sends at once (requests wait for vouchers, then 429, never
// 402), and a channel that starts closing is refused within the state's age bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startChain, startPaidNetwork, CLIENT_ID, MODEL } from "./settlement-fixture.js";
import { sessionBinding } from "../../src/protocol/session-binding.js";
import { MeterRefusal } from "../../src/proxy/meter.js";
import { WalletService } from "../../src/chain/wallet.js";
import { keyPairFromSeedHex } from "../../src/payments/ton.js";
import { CHANNEL_OP_VALUE, ChannelStatus, startCloseBody } from "../../src/chain/contracts/ClientChannel.js";
import { paymentsRequestSchema, parseMessage } from "../../src/protocol/messages.js";

const head = (id: string) => ({ op: "inference" as const, requestId: id, endpoint: "chat" as const, model: MODEL, maxTokens: 20, bodyBytes: 200 });
const usage = { prompt_tokens: 150, completion_tokens: 20, total_tokens: 170 };

test("a client that never signs gets at most the exposure bound, whatever its deposit; waiting requests run once exposure drops", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-exposure-"));
  const chain = await startChain(dir, toNano("50"));
  const p = await startPaidNetwork(chain);
  try {
    const { meter, net } = p;
    const ctx = { clientId: CLIENT_ID, session: sessionBinding(net.client.link.conn!), insecure: false };
    const max = 200n * 50_000n + 20n * 100_000n; // this request's maximum at the devnet's prices (checked below)
    meter.voucherGraceMs = 3_600_000; // the old allowance for "vouchers on the way" is no way around the bound
    meter.exposureWaitMs = 300;
    meter.maxUnsignedNano = 10n * max;
    const chargedBefore = BigInt(meter.status().charged as string);
    // The attack: many requests at once, answered, never signed. Before the bound, a 5 TON channel got 16 answers.
    let served = 0;
    let refused: unknown;
    for (let i = 0; i < 40 && !refused; i++) {
      try {
        await meter.admit(ctx, head(`greedy-${i}`));
        await meter.settle(ctx, head(`greedy-${i}`), "w1", usage);
        served++;
      } catch (err) {
        refused = err;
      }
    }
    assert.ok(refused instanceof MeterRefusal && refused.code === "overloaded", `refused with 429 overloaded, got ${String(refused)}`);
    assert.match((refused as Error).message, /serves at most \d+ on credit per channel; waited 0 s for the client's vouchers/);
    const unsigned = BigInt(meter.status().charged as string) - chargedBefore;
    assert.ok(unsigned + max > meter.maxUnsignedNano && unsigned <= meter.maxUnsignedNano, `unsigned ${unsigned} within the bound ${meter.maxUnsignedNano}`);
    assert.ok(served < 40, `${served} answers on credit, not 40`);

    // Concurrency: with the bound reached by reservations, a request waits and runs as soon as one ends.
    meter.voucherGraceMs = 3_600_000;
    meter.maxUnsignedNano = unsigned + 3n * max - 1n; // room for exactly 2 in flight (admission needs owed + reserved + max)
    meter.exposureWaitMs = 5_000;
    await meter.admit(ctx, head("c1"));
    await meter.admit(ctx, head("c2"));
    let third = false;
    const waiting = meter.admit(ctx, head("c3")).then(() => (third = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(third, false, "the third request waits while two are in flight");
    meter.release(ctx, head("c1"));
    await waiting;
    assert.equal(third, true, "…and runs as soon as one ended");
    meter.release(ctx, head("c2"));
    meter.release(ctx, head("c3"));
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a channel that starts closing is refused at once (state re-read before admission once older than its bound)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-closing-"));
  const chain = await startChain(dir);
  const p = await startPaidNetwork(chain);
  try {
    const { meter, net } = p;
    const ctx = { clientId: CLIENT_ID, session: sessionBinding(net.client.link.conn!), insecure: false };
    await meter.admit(ctx, head("before"));
    meter.release(ctx, head("before"));
    // The client starts closing its channel on chain (as "cocoon client close" does).
    const wallet = new WalletService(chain.ton.client, keyPairFromSeedHex(chain.boot.seeds.client), "devnet");
    await wallet.sendBatch([{ to: chain.boot.channel, value: CHANNEL_OP_VALUE, body: startCloseBody() }]);
    assert.equal((await chain.ton.channelState(chain.boot.channel)).status, ChannelStatus.CLOSING);
    meter.channelStateMaxAgeMs = 0; // (default 5 s: the refusal comes at most that late)
    await assert.rejects(meter.admit(ctx, head("after")), /is closing or closed/);
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a cheating client that disputes what it was served gets it written off only up to the cap, then is refused; it cannot write off what is not its own", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-disputes-"));
  const chain = await startChain(dir, toNano("50"));
  const p = await startPaidNetwork(chain);
  try {
    const { meter, net } = p;
    const ctx = { clientId: CLIENT_ID, session: sessionBinding(net.client.link.conn!), insecure: false };
    meter.voucherGraceMs = 3_600_000;
    meter.exposureWaitMs = 50;
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const id = `served-${i}`;
      await meter.admit(ctx, head(id));
      await meter.settle(ctx, head(id), "w1", usage);
      ids.push(id);
    }
    const cost = BigInt(meter.status().charged as string) / 6n;
    // The proxy's cap: a little more than two answers.
    meter.maxWriteOffNano = 2n * cost + 1n;
    const dispute = (requestIds: string[]) => meter.handleClientRequest(ctx, { type: "dispute", requests: requestIds.map((requestId) => ({ requestId, reason: "never got it" })) });
    // Ids that are not charged to this channel (another client's, made up) write nothing off.
    const none = await dispute(["someone-elses-request", "made-up"]);
    assert.equal(none.writtenOff, "0");
    // Disputing the same answer twice writes it off once.
    assert.equal((await dispute([ids[0]!, ids[0]!])).writtenOff, cost.toString());
    await dispute([ids[1]!, ids[2]!]);
    assert.equal(BigInt(meter.status().writtenOff as string), 3n * cost);
    // Past the cap the channel is refused until the operator reviews it, with the numbers.
    await assert.rejects(meter.admit(ctx, head("after")), (e: Error) => e instanceof MeterRefusal && /disputed answers worth \d+ nanoTON in total, above this proxy's limit/.test(e.message));
    // Malformed disputes are refused with what to send.
    // (the proxy parses every payments request with its one schema before the meter sees it)
    assert.throws(() => parseMessage(paymentsRequestSchema, { type: "dispute", requests: "all of them" }, "payments request"), /malformed payments request: requests/);
    assert.throws(() => parseMessage(paymentsRequestSchema, { type: "dispute", requests: Array.from({ length: 257 }, (_, i) => ({ requestId: `r${i}`, reason: "x" })) }, "payments request"), /malformed payments request: requests/);
  } finally {
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
