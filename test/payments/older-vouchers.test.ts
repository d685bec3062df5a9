// An older client voucher at the proxy, or a lower payout voucher at the worker, changes nothing: no ledger row is
// written, and what the proxy / worker reports stays the same. (The ledger's "latest" is the highest cumulative, so
// a stored older voucher would not change the latest; these tests look at the rows themselves.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Address } from "@ton/core";
import { startChain, CLIENT_ID } from "./settlement-fixture.js";
import { startProxyPayments, startWorkerPayments } from "../../src/payments/setup.js";
import { signRegistration } from "../../src/payments/messages.js";
import { ed25519Signer, encodeSignedVoucher, signVoucher, type Voucher } from "../../src/chain/vouchers.js";
import { keyPairFromSeedHex } from "../../src/payments/ton.js";
import type { Ledger } from "../../src/payments/ledger.js";

/** Rows of a voucher table, read on the ledger's own connection (so writes not yet committed count too). */
function rows(ledger: Ledger, table: "client_vouchers" | "payout_vouchers"): number {
  const db = (ledger as unknown as { db: { prepare(sql: string): { get(): { n: number } } } }).db;
  return db.prepare(`SELECT COUNT(*) AS n FROM ${table}`).get().n;
}
/** The meter's status less the count of signature verifications (each older voucher is verified, then ignored). */
const meterStatus = (m: { status(): Record<string, unknown> }) => JSON.stringify({ ...m.status(), vouchersVerified: undefined });
const ledgerOf = (x: object): Ledger => (x as unknown as { o: { ledger: Ledger } }).o.ledger;
const seedSigner = (seedHex: string) => ed25519Signer(keyPairFromSeedHex(seedHex).secretKey.subarray(0, 32));
const b64 = (v: Voucher, signer: ReturnType<typeof ed25519Signer>) => encodeSignedVoucher(signVoucher(v, signer)).toString("base64");

test("older vouchers are ignored: the proxy writes no row for an older client voucher, the worker none for a lower payout voucher", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-older-vouchers-"));
  const chain = await startChain(dir);
  const meter = await startProxyPayments(chain.configs.proxy);
  const payee = await startWorkerPayments(chain.configs.worker, {});
  try {
    const { boot, ton } = chain;
    // ---- proxy: client vouchers on the channel ----
    const client = seedSigner(boot.seeds.client);
    const ctx = { clientId: CLIENT_ID, session: "ab".repeat(32), insecure: false };
    const proof = signRegistration(boot.channel, boot.proxyContract, CLIENT_ID, ctx.session, client);
    await meter.handleClientRequest(ctx, { type: "register", channel: boot.channel.toString(), proof });
    const pay = (n: bigint) => b64({ kind: "payment", globalId: ton.globalId, channel: boot.channel, cumulative: n }, client);
    const mLedger = ledgerOf(meter);

    const first = await meter.handleClientRequest(ctx, { type: "voucher", voucher: pay(300_000n) });
    assert.equal(first.signed, "300000");
    assert.equal(rows(mLedger, "client_vouchers"), 1);
    const statusBefore = meterStatus(meter);
    for (const older of [100_000n, 299_999n, 0n]) {
      const r = await meter.handleClientRequest(ctx, { type: "voucher", voucher: pay(older) });
      assert.equal(r.signed, "300000", `an older voucher (${older}) leaves the signed amount`);
      assert.equal(rows(mLedger, "client_vouchers"), 1, `an older voucher (${older}) writes no row`);
      assert.equal(mLedger.latestClientVoucher(boot.channel.toRawString())?.cumulativeNano, 300_000n);
    }
    assert.equal(meterStatus(meter), statusBefore, "ledger writes, channel view and totals unchanged");
    // A newer one is written (the rule is "older is ignored", not "everything is ignored").
    assert.equal((await meter.handleClientRequest(ctx, { type: "voucher", voucher: pay(400_000n) })).signed, "400000");
    assert.equal(rows(mLedger, "client_vouchers"), 2);
    // The exact bytes of an older voucher, sent again after a newer one, change nothing either.
    const again = pay(300_000n);
    assert.equal((await meter.handleClientRequest(ctx, { type: "voucher", voucher: again })).signed, "400000");
    assert.equal(rows(mLedger, "client_vouchers"), 2);

    // ---- worker: payout vouchers from the proxy contract ----
    const operator = seedSigner(boot.seeds.operator);
    const worker = Address.parse(payee.announce().payoutAddress as string);
    const payout = (n: bigint) => b64({ kind: "payout", globalId: ton.globalId, proxy: boot.proxyContract, worker, cumulative: n }, operator);
    const wLedger = ledgerOf(payee);
    assert.equal(payee.receiveVoucher(payout(500_000n)), true);
    assert.equal(payee.credited, 500_000n);
    assert.equal(rows(wLedger, "payout_vouchers"), 1);
    const payeeBefore = JSON.stringify(payee.status());
    for (const lower of [499_999n, 1n, 0n]) {
      assert.equal(payee.receiveVoucher(payout(lower)), true, "a lower genuine voucher is not an error");
      assert.equal(rows(wLedger, "payout_vouchers"), 1, `a lower voucher (${lower}) writes no row`);
      assert.equal(payee.credited, 500_000n);
    }
    assert.equal(JSON.stringify(payee.status()), payeeBefore);
    assert.equal(payee.receiveVoucher(payout(600_000n)), true);
    assert.equal(rows(wLedger, "payout_vouchers"), 2);
    assert.equal(payee.credited, 600_000n);
  } finally {
    await meter.close();
    await payee.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
