import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TonClient, WalletContractV5R1, internal, SendMode, toNano, Address, beginCell, comment } from "@ton/ton";
import { keyPairFromSeed } from "@ton/crypto";
import { startChainServer } from "../../src/chain/server.js";
import { makeTonClient } from "../../src/chain/network.js";

const seedA = Buffer.alloc(32, 7);
const seedB = Buffer.alloc(32, 9);

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

/** Uninitialized accounts pay a tiny storage fee as seconds pass, so compare with a 0.001 TON allowance. */
const STORAGE_ALLOWANCE = 1_000_000n;
function near(actual: bigint, expected: bigint): void {
  assert.ok(actual <= expected && actual >= expected - STORAGE_ALLOWANCE, `expected about ${expected}, got ${actual}`);
}

async function waitSeqno(get: () => Promise<number>, target: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if ((await get()) >= target) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("seqno did not advance");
}

test("TonClient against the local chain: faucet, V5R1 deploy + transfer, get-methods, transactions, restart", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-chain-"));
  let srv: Awaited<ReturnType<typeof startChainServer>> | undefined;
  try {
    srv = await startChainServer({ port: 0, dataDir: dir });
    const base = srv.url.replace(/\/jsonRPC$/, "");
    let client = makeTonClient("devnet", srv.url, {});
    const kpA = keyPairFromSeed(seedA);
    const kpB = keyPairFromSeed(seedB);
    const walletA = WalletContractV5R1.create({ workchain: 0, publicKey: kpA.publicKey });
    const walletB = WalletContractV5R1.create({ workchain: 0, publicKey: kpB.publicKey });

    // Fresh address: zero balance, uninitialized.
    assert.equal(await client.getBalance(walletA.address), 0n);
    assert.equal((await client.getContractState(walletA.address)).state, "uninitialized");
    assert.equal(await client.isContractDeployed(walletA.address), false);

    // Faucet funds the undeployed wallet (non-bounceable).
    const f = await post(`${base}/faucet`, { address: walletA.address.toString(), amount: toNano("5").toString() });
    assert.equal(f.status, 200, JSON.stringify(f.json));
    assert.equal(f.json.ok, true);
    assert.equal(await client.getBalance(walletA.address), toNano("5"));

    // Faucet cap and bad input give clear JSON errors.
    const big = await post(`${base}/faucet`, { address: walletA.address.toString(), amount: toNano("1000000").toString() });
    assert.equal(big.status, 422);
    assert.equal(big.json.ok, false);
    assert.match(big.json.error, /cap/);

    // Deploy + transfer with the real wallet contract through TonClient.
    const openedA = client.open(walletA);
    assert.equal(await openedA.getSeqno(), 0);
    await openedA.sendTransfer({
      seqno: 0, secretKey: kpA.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
      messages: [internal({ to: walletB.address, value: toNano("1.5"), bounce: false, body: "hello" })],
    });
    await waitSeqno(() => openedA.getSeqno(), 1);
    assert.equal(await openedA.getSeqno(), 1);
    assert.equal(await client.isContractDeployed(walletA.address), true);
    near(await client.getBalance(walletB.address), toNano("1.5"));
    const balA = await client.getBalance(walletA.address);
    assert.ok(balA < toNano("3.5") && balA > toNano("3.4"), `fees were charged: ${balA}`);

    // A second transfer: seqno increments again.
    await openedA.sendTransfer({
      seqno: 1, secretKey: kpA.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
      messages: [internal({ to: walletB.address, value: toNano("0.25"), bounce: false })],
    });
    assert.equal(await openedA.getSeqno(), 2);
    near(await client.getBalance(walletB.address), toNano("1.75"));

    // Replay of an old seqno is rejected with a clear error.
    await assert.rejects(openedA.sendTransfer({
      seqno: 1, secretKey: kpA.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
      messages: [internal({ to: walletB.address, value: toNano("0.25"), bounce: false })],
    }), /cannot apply external message.*exit code/);

    // Get-method with arguments and stack round trip (get_public_key returns a 256-bit int).
    const pk = await client.runMethod(walletA.address, "get_public_key");
    assert.equal(pk.stack.readBigNumber(), BigInt("0x" + kpA.publicKey.toString("hex")));
    const bad = await client.runMethodWithError(walletA.address, "no_such_method");
    assert.notEqual(bad.exit_code, 0);

    // Transactions: newest first, comment visible, paging with lt/hash, single lookup.
    const txs = await client.getTransactions(walletA.address, { limit: 10 });
    assert.equal(txs.length, 3); // faucet credit, transfer 1, transfer 2
    assert.ok(txs[0].lt > txs[1].lt && txs[1].lt > txs[2].lt);
    const txsB = await client.getTransactions(walletB.address, { limit: 10 });
    assert.equal(txsB.length, 2);
    const firstIn = txsB[1].inMessage!;
    assert.equal(firstIn.info.type, "internal");
    assert.equal(firstIn.body.beginParse().skip(32).loadStringTail(), "hello");
    const page2 = await client.getTransactions(walletA.address, {
      limit: 2, lt: txs[0].lt.toString(), hash: txs[0].hash().toString("base64"), inclusive: false,
    });
    assert.deepEqual(page2.map((t) => t.lt), [txs[1].lt, txs[2].lt]);
    const one = await client.getTransaction(walletA.address, txs[1].lt.toString(), txs[1].hash().toString("base64"));
    assert.ok(one && one.hash().equals(txs[1].hash()));
    const located = await client.tryLocateResultTx(walletA.address, walletB.address, firstIn.info.type === "internal" ? firstIn.info.createdLt.toString() : "0");
    assert.ok(located.hash().equals(txsB[1].hash()));

    // Masterchain info advances with every applied message.
    const mc = await client.getMasterchainInfo();
    assert.ok(mc.latestSeqno >= 3);
    const fee = await client.estimateExternalMessageFee(walletA.address, {
      body: walletA.createTransfer({ seqno: 2, secretKey: kpA.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY, messages: [] }),
      initCode: null, initData: null, ignoreSignature: true,
    });
    assert.ok(fee.source_fees.gas_fee > 0);
    assert.equal(await openedA.getSeqno(), 2, "estimateFee must not change state");

    // Plain GET form and the error envelope.
    const g = await (await fetch(`${base}/getAddressBalance?address=${walletB.address.toString()}`)).json();
    assert.equal(g.ok, true);
    near(BigInt(g.result), toNano("1.75"));
    const e = await (await fetch(`${base}/getAddressBalance?address=nope`)).json();
    assert.equal(e.ok, false);
    assert.equal(e.code, 422);
    assert.match(e.error, /address/);
    const u = await post(srv.url, { method: "noSuch", params: {}, id: 5, jsonrpc: "2.0" });
    assert.equal(u.status, 404); // as TON Center: the HTTP status is the error code, on /jsonRPC too
    assert.equal(u.json.code, 404);
    assert.equal(u.json.id, 5);

    const balABeforeRestart = await client.getBalance(walletA.address);
    const balBBeforeRestart = await client.getBalance(walletB.address);
    await srv.close();

    // Restart on the same data dir: balances, seqno and history survive; new transfers still work.
    srv = await startChainServer({ port: 0, dataDir: dir });
    client = makeTonClient("devnet", srv.url, {});
    assert.equal(await client.getBalance(walletB.address), balBBeforeRestart);
    assert.equal(await client.getBalance(walletA.address), balABeforeRestart);
    const openedA2 = client.open(walletA);
    assert.equal(await openedA2.getSeqno(), 2);
    assert.equal((await client.getTransactions(walletA.address, { limit: 10 })).length, 3);
    await openedA2.sendTransfer({
      seqno: 2, secretKey: kpA.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
      messages: [internal({ to: walletB.address, value: toNano("0.1"), bounce: false })],
    });
    assert.equal(await openedA2.getSeqno(), 3);
    near(await client.getBalance(walletB.address), toNano("1.85"));
    const after = await client.getTransactions(walletA.address, { limit: 10 });
    assert.equal(after.length, 4);
    assert.ok(after[0].lt > after[1].lt, "logical time keeps increasing after a restart");
    assert.ok((await client.getMasterchainInfo()).latestSeqno > mc.latestSeqno);
    await srv.close();
  } finally {
    await srv?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
