import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Ledger, LedgerConflictError } from "../../src/payments/ledger.js";
import { LEDGER_SCHEMA_VERSION } from "../../src/payments/ledgerSchema.js";
import { nodeEntry } from "../helpers/entry.js";

const ABOVE_2_53 = 2n ** 53n + 1n;
const HUGE = 2n ** 100n + 12345n;

function withDir(fn: (dir: string) => Promise<void> | void) {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), "cocoon-ledger-"));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

const receipt = (id: string, cost: bigint, extra: Partial<Parameters<Ledger["recordReceipt"]>[0]> = {}) => ({
  requestId: id, model: "qwen", promptTokens: 10, completionTokens: 20, costNano: cost, workerId: "w1", channel: "chanA", ...extra,
});

test("pragmas and schema version", withDir((dir) => {
  const path = join(dir, "ledger.sqlite");
  Ledger.open(path).close();
  const db = new Database(path);
  assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
  assert.equal(db.pragma("user_version", { simple: true }), LEDGER_SCHEMA_VERSION);
  db.pragma(`user_version = ${LEDGER_SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(() => Ledger.open(path), /newer than this program supports/);
}));

test("receipts: idempotent by request id, conflicts refused, exact bigint sums above 2^53", withDir((dir) => {
  const l = Ledger.open(join(dir, "l.sqlite"));
  assert.deepEqual(l.recordReceipt(receipt("r1", ABOVE_2_53, { workerEarnNano: ABOVE_2_53 - 7n })), { inserted: true });
  assert.deepEqual(l.recordReceipt(receipt("r1", ABOVE_2_53, { workerEarnNano: ABOVE_2_53 - 7n })), { inserted: false });
  assert.throws(() => l.recordReceipt(receipt("r1", ABOVE_2_53 + 1n)), LedgerConflictError);
  l.recordReceipt(receipt("r2", HUGE, { workerId: "w2", channel: "chanB" }));
  const t = l.totals();
  assert.equal(t.spent, ABOVE_2_53 + HUGE);
  assert.equal(t.earned, ABOVE_2_53 - 7n + HUGE);
  assert.equal(t.fees, 7n);
  assert.equal(l.totals("w2").earned, HUGE);
  assert.equal(l.totals("chanA").spent, ABOVE_2_53);
  const r = l.getReceipt("r1")!;
  assert.equal(r.costNano, ABOVE_2_53);
  assert.equal(r.promptTokens, 10);
  assert.equal(l.countReceipts(), 2);
  assert.throws(() => l.recordReceipt(receipt("r3", -1n)), RangeError);
  assert.throws(() => l.recordReceipt(receipt("r3", 5n, { workerEarnNano: 6n })), /cannot exceed/);
  assert.throws(() => l.recordReceipt(receipt("", 5n)), /requestId/);
  assert.throws(() => l.recordReceipt(receipt("r3", 5n, { promptTokens: 1.5 })), /promptTokens/);
  l.close();
}));

test("vouchers: latest by numeric cumulative, idempotent, conflicting signature refused", withDir((dir) => {
  const l = Ledger.open(join(dir, "l.sqlite"));
  // 9 < 10 numerically but not as text: ordering must be numeric.
  l.recordClientVoucher({ key: "chanA", cumulativeNano: 9n, signature: Buffer.from("s9"), seq: 1 });
  l.recordClientVoucher({ key: "chanA", cumulativeNano: 10n, signature: Buffer.from("s10"), seq: 2 });
  l.recordClientVoucher({ key: "chanA", cumulativeNano: HUGE, signature: Buffer.from("sH"), seq: 3 });
  assert.deepEqual(l.recordClientVoucher({ key: "chanA", cumulativeNano: 10n, signature: Buffer.from("s10"), seq: 2 }), { inserted: false });
  assert.throws(() => l.recordClientVoucher({ key: "chanA", cumulativeNano: 10n, signature: Buffer.from("xx"), seq: 2 }), LedgerConflictError);
  const latest = l.latestClientVoucher("chanA")!;
  assert.equal(latest.cumulativeNano, HUGE);
  assert.equal(latest.seq, 3);
  assert.equal(latest.signature.toString(), "sH");
  assert.equal(l.latestClientVoucher("nope"), undefined);
  l.recordPayoutVoucher({ key: "workerX", cumulativeNano: 500n, signature: Buffer.from("p"), seq: 1 });
  assert.equal(l.latestPayoutVoucher("workerX")!.cumulativeNano, 500n);
  assert.equal(l.latestClientVoucher("workerX"), undefined, "client and payout vouchers are separate");
  l.close();
}));

test("settlements: pending -> confirmed counted once; unsettled amounts; confirmed is final", withDir((dir) => {
  const l = Ledger.open(join(dir, "l.sqlite"));
  l.recordClientVoucher({ key: "chanA", cumulativeNano: HUGE, signature: Buffer.from("a"), seq: 1 });
  l.recordPayoutVoucher({ key: "w1", cumulativeNano: 1000n, signature: Buffer.from("b"), seq: 1 });
  l.recordSettlement({ txHash: "tx1", kind: "redeem", counterparty: "chanA", amountNano: HUGE - 5n });
  let [ch] = l.unsettledChannels();
  assert.deepEqual(ch, { key: "chanA", signed: HUGE, settled: 0n, pending: HUGE - 5n, unsettled: 5n });
  l.updateSettlement("tx1", "confirmed");
  l.updateSettlement("tx1", "confirmed"); // no-op
  assert.deepEqual(l.recordSettlement({ txHash: "tx1", kind: "redeem", counterparty: "chanA", amountNano: HUGE - 5n }), { inserted: false });
  [ch] = l.unsettledChannels();
  assert.deepEqual(ch, { key: "chanA", signed: HUGE, settled: HUGE - 5n, pending: 0n, unsettled: 5n });
  assert.equal(l.totals().redeemed, HUGE - 5n);
  assert.throws(() => l.updateSettlement("tx1", "failed"), LedgerConflictError);
  assert.throws(() => l.recordSettlement({ txHash: "tx1", kind: "payout", counterparty: "w1", amountNano: 1n }), LedgerConflictError);

  l.recordSettlement({ txHash: "tx2", kind: "payout", counterparty: "w1", amountNano: 400n });
  l.updateSettlement("tx2", "failed");
  assert.deepEqual(l.unsettledWorkers(), [{ key: "w1", signed: 1000n, settled: 0n, pending: 0n, unsettled: 1000n }]);
  l.recordSettlement({ txHash: "tx3", kind: "payout", counterparty: "w1", amountNano: 400n, status: "confirmed" });
  assert.equal(l.totals().paid, 400n);
  assert.equal(l.totals("w1").paid, 400n);
  assert.equal(l.unsettledWorkers()[0].unsettled, 600n);
  assert.deepEqual(l.pendingSettlements(), []);
  assert.throws(() => l.updateSettlement("nope", "confirmed"), /record it first/);
  l.close();
}));

test("close and reopen keeps everything acknowledged (no double counting after restart)", withDir((dir) => {
  const path = join(dir, "l.sqlite");
  let l = Ledger.open(path);
  for (let i = 0; i < 50; i++) l.recordReceipt(receipt(`r${i}`, HUGE));
  l.recordSettlement({ txHash: "t", kind: "redeem", counterparty: "chanA", amountNano: 7n });
  l.close();
  l = Ledger.open(path);
  // A restarted proxy replays the same receipts: nothing is counted twice.
  for (let i = 0; i < 50; i++) assert.equal(l.recordReceipt(receipt(`r${i}`, HUGE)).inserted, false);
  assert.equal(l.totals().spent, HUGE * 50n);
  assert.equal(l.getSettlement("t")!.status, "pending");
  l.close();
}));

test("group commit: one turn's writes become durable together, at durable(); other readers see them only then", withDir(async (dir) => {
  const path = join(dir, "group.sqlite");
  const l = Ledger.open(path);
  for (let i = 0; i < 20; i++) l.recordReceipt(receipt(`g${i}`, 5n));
  l.recordClientVoucher({ key: "chanA", cumulativeNano: 100n, signature: Buffer.from([1]), seq: 0 });
  // Visible at once to this ledger (same connection, cached sums)...
  assert.equal(l.spentOf("chanA"), 100n);
  assert.equal(l.latestClientVoucher("chanA")!.cumulativeNano, 100n);
  // ...but not yet committed: another connection (another process) does not see them.
  const other = new Database(path, { readonly: true });
  const count = () => (other.prepare("SELECT COUNT(*) AS n FROM receipts").get() as { n: number }).n;
  assert.equal(count(), 0);
  await l.durable();
  assert.equal(count(), 20);
  // Nothing pending: durable() resolves at once, and a later turn's write commits on its own.
  await l.durable();
  l.recordReceipt(receipt("g20", 5n));
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(count(), 21, "the group is committed at the end of the turn even when nobody awaits durable()");
  other.close();
  l.close();
}));

test("group commit: one fsync in flight at a time; groups committed meanwhile share the next one", withDir(async (dir) => {
  const l = Ledger.open(join(dir, "syncs.sqlite"));
  const acks: Promise<void>[] = [];
  for (let turn = 0; turn < 40; turn++) {
    l.recordReceipt(receipt(`t${turn}`, 1n));
    acks.push(l.durable());
    await new Promise((r) => setImmediate(r)); // next event-loop turn: a new group
  }
  await Promise.all(acks);
  assert.ok(l.stats.commits >= 40, `${l.stats.commits} commits`);
  assert.ok(l.stats.syncs <= l.stats.commits, `${l.stats.syncs} fsyncs for ${l.stats.commits} commits`);
  // Nothing left to sync: durable() resolves at once.
  await l.durable();
  l.close();
  const again = Ledger.open(join(dir, "syncs.sqlite"));
  assert.equal(again.countReceipts(), 40);
  again.close();
}));

test("group commit: a failed write is undone alone, sums and latest vouchers stay exact", withDir(async (dir) => {
  const l = Ledger.open(join(dir, "undo.sqlite"));
  l.recordReceipt(receipt("a", 10n));
  l.recordClientVoucher({ key: "chanA", cumulativeNano: 10n, signature: Buffer.from([1]), seq: 0 });
  assert.throws(() => l.atomically(() => {
    l.recordReceipt(receipt("b", 7n));
    l.recordClientVoucher({ key: "chanA", cumulativeNano: 17n, signature: Buffer.from([2]), seq: 0 });
    throw new Error("signing failed");
  }), /signing failed/);
  assert.throws(() => l.recordReceipt(receipt("a", 11n)), LedgerConflictError);
  l.recordReceipt(receipt("c", 1n)); // same turn, after the failures
  assert.equal(l.spentOf("chanA"), 11n);
  assert.equal(l.latestClientVoucher("chanA")!.cumulativeNano, 10n);
  assert.equal(l.getReceipt("b"), undefined);
  await l.durable();
  l.close();
  const again = Ledger.open(join(dir, "undo.sqlite"));
  assert.equal(again.spentOf("chanA"), 11n);
  assert.equal(again.latestClientVoucher("chanA")!.cumulativeNano, 10n);
  assert.equal(again.countReceipts(), 2);
  again.close();
}));

test("SIGKILL mid-run loses nothing that was acknowledged", withDir(async (dir) => {
  const path = join(dir, "crash.sqlite");
  const crashChild = nodeEntry(new URL("./ledger-crash-child.ts", import.meta.url));
  const child = spawn(process.execPath, [...crashChild.execArgv, crashChild.file, path],
    { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  await new Promise<void>((resolve) => {
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if ((out.match(/ack /g) ?? []).length >= 40) {
        child.kill("SIGKILL");
        resolve();
      }
    });
    child.on("exit", () => resolve());
  });
  await new Promise((r) => child.once("exit", r).once("close", r));
  const acks = [...out.matchAll(/ack (\d+)\n/g)].map((m) => Number(m[1]));
  assert.ok(acks.length >= 40, `child acknowledged ${acks.length} records`);
  const lastAck = acks[acks.length - 1];
  console.log(`crash test: ${acks.length} acks before SIGKILL`);
  const l = Ledger.open(path);
  for (let i = 0; i <= lastAck; i++) assert.ok(l.getReceipt(`req-${i}`), `acknowledged receipt req-${i} survived`);
  const n = l.countReceipts();
  // The spent total matches exactly the receipts present (no partial transaction).
  let expected = 0n;
  for (let i = 0; i < n; i++) expected += 2n ** 70n + BigInt(i);
  assert.equal(l.totals().spent, expected);
  assert.ok(l.latestClientVoucher("ch1")!.cumulativeNano >= 2n ** 70n * BigInt(lastAck + 1));
  l.close();
}));
