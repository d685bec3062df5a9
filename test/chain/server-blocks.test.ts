import { test } from "node:test";
import assert from "node:assert/strict";
import { Cell, toNano } from "@ton/core";
import { internal, SendMode, WalletContractV5R1 } from "@ton/ton";
import { keyPairFromSeed } from "@ton/crypto";
import { startChainServer } from "../../src/chain/server.js";
import { makeTonClient } from "../../src/chain/network.js";

async function rpc(url: string, method: string, params: Record<string, unknown>): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ id: "1", jsonrpc: "2.0", method, params }) });
  return { status: r.status, json: await r.json() };
}

test("estimateFee emulates an unfunded wallet as funded but moves nothing; ignore_chksig:false checks the signature", async () => {
  const srv = await startChainServer({ port: 0 });
  try {
    const kp = keyPairFromSeed(Buffer.alloc(32, 41));
    const w = WalletContractV5R1.create({ workchain: 0, publicKey: kp.publicKey });
    const params = (secretKey: Buffer) => ({
      address: w.address.toString(),
      body: w.createTransfer({ seqno: 0, secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
        messages: [internal({ to: w.address, value: toNano("1"), bounce: false })] }).toBoc().toString("base64"),
      init_code: w.init.code.toBoc().toString("base64"),
      init_data: w.init.data.toBoc().toString("base64"),
    });
    const est = await rpc(srv.url, "estimateFee", params(Buffer.alloc(64)));
    assert.equal(est.status, 200, JSON.stringify(est.json));
    assert.ok(est.json.result.source_fees.gas_fee > 0);
    // Nothing was deployed or credited by the estimate.
    const info = await rpc(srv.url, "getAddressInformation", { address: w.address.toString() });
    assert.equal(info.json.result.balance, "0");
    assert.equal(info.json.result.state, "uninitialized");
    // With signature checks on, a zero signature is refused and a real one is estimated.
    const bad = await rpc(srv.url, "estimateFee", { ...params(Buffer.alloc(64)), ignore_chksig: false });
    assert.equal(bad.status, 500);
    assert.match(bad.json.error, /cannot apply external message/);
    const good = await rpc(srv.url, "estimateFee", { ...params(kp.secretKey), ignore_chksig: false });
    assert.equal(good.status, 200, JSON.stringify(good.json));
    assert.equal((await rpc(srv.url, "getAddressBalance", { address: w.address.toString() })).json.result, "0");
  } finally {
    await srv.close();
  }
});

test("blocks: paging by (account, lt) visits every transaction once; seqnos and hashes are honoured or refused", async () => {
  const srv = await startChainServer({ port: 0 });
  try {
    const base = srv.url.replace(/\/jsonRPC$/, "");
    const client = makeTonClient("devnet", srv.url, {});
    const kp = keyPairFromSeed(Buffer.alloc(32, 42));
    const w = client.open(WalletContractV5R1.create({ workchain: 0, publicKey: kp.publicKey }));
    await rpc(srv.url, "faucet", { address: w.address.toString(), amount: toNano("5").toString() });
    // One block with several transactions on several accounts: the wallet, three destinations.
    const dests = [1, 2, 3].map((i) => WalletContractV5R1.create({ workchain: 0, publicKey: Buffer.alloc(32, i) }).address);
    await w.sendTransfer({ seqno: 0, secretKey: kp.secretKey, sendMode: SendMode.PAY_GAS_SEPARATELY,
      messages: dests.map((to) => internal({ to, value: toNano("0.1"), bounce: false })) });
    const last = (await rpc(srv.url, "getMasterchainInfo", {})).json.result.last;
    const block = { workchain: 0, shard: last.shard, seqno: last.seqno };
    const all = (await rpc(srv.url, "getBlockTransactions", { ...block, count: 100 })).json.result;
    assert.equal(all.incomplete, false);
    assert.equal(all.transactions.length, 4);
    const seen: string[] = [];
    let after: Record<string, string> = {};
    for (let i = 0; i < 10; i++) {
      const page = (await rpc(srv.url, "getBlockTransactions", { ...block, count: 1, ...after })).json.result;
      seen.push(...page.transactions.map((t: { hash: string }) => t.hash));
      if (!page.incomplete) break;
      const t = page.transactions[0];
      after = { after_lt: t.lt, after_hash: Buffer.from(t.account.split(":")[1], "hex").toString("base64") };
    }
    assert.deepEqual(seen, all.transactions.map((t: { hash: string }) => t.hash));
    assert.equal(new Set(seen).size, 4);
    // The masterchain block of the same seqno holds none of them (they are all on workchain 0).
    assert.equal((await rpc(srv.url, "getBlockTransactions", { ...block, workchain: -1, count: 10 })).json.result.transactions.length, 0);
    // Wrong root hash, missing shard, a block not made yet: refused.
    assert.equal((await rpc(srv.url, "getBlockTransactions", { ...block, root_hash: Buffer.alloc(32).toString("base64") })).status, 500);
    assert.equal((await rpc(srv.url, "getBlockTransactions", { workchain: 0, seqno: last.seqno })).status, 422);
    assert.equal((await rpc(srv.url, "getBlockHeader", { ...block, seqno: last.seqno + 1 })).status, 500);
    // Header and lookups agree with the block's transactions; genesis has lt 0.
    const header = (await rpc(srv.url, "getBlockHeader", block)).json.result;
    const txs = await client.getTransactions(w.address, { limit: 1 });
    assert.ok(BigInt(header.start_lt) <= txs[0].lt && txs[0].lt <= BigInt(header.end_lt));
    assert.equal((await rpc(srv.url, "lookupBlock", { workchain: 0, shard: last.shard, lt: txs[0].lt.toString() })).json.result.seqno, last.seqno);
    assert.equal((await rpc(srv.url, "lookupBlock", { workchain: -1, shard: last.shard, unixtime: header.gen_utime })).json.result.seqno, last.seqno);
    assert.equal((await rpc(srv.url, "lookupBlock", { workchain: -1, shard: last.shard, seqno: 1, lt: "1" })).status, 422);
    const genesis = (await rpc(srv.url, "getBlockHeader", { workchain: -1, shard: last.shard, seqno: 0 })).json.result;
    assert.equal(genesis.start_lt, "0");
    assert.deepEqual(genesis.prev_blocks, []);
    // State reads: the last block is honoured, an earlier one refused, never answered with today's state.
    const at = async (seqno: number) => rpc(srv.url, "runGetMethod", { address: w.address.toString(), method: "seqno", stack: [], seqno });
    assert.equal((await at(last.seqno)).json.result.stack[0][1], "0x1");
    assert.equal((await at(last.seqno - 1)).status, 500);
    assert.match((await at(last.seqno - 1)).json.error, /not kept/);
    // A getTransactions anchor that is not there is refused, not answered with an empty or another page.
    const wrongAnchor = await rpc(srv.url, "getTransactions", { address: w.address.toString(), lt: txs[0].lt.toString(), hash: Buffer.alloc(32, 1).toString("base64") });
    assert.equal(wrongAnchor.status, 500);
    assert.match(wrongAnchor.json.error, /transaction was not found/);
    // Config: parameter 19 is the global id; an unset one is refused.
    const p19 = (await rpc(srv.url, "getConfigParam", { config_id: 19 })).json.result.config.bytes;
    assert.equal(Cell.fromBoc(Buffer.from(p19, "base64"))[0].beginParse().loadInt(32), header.global_id);
    assert.equal((await rpc(srv.url, "getConfigParam", { config_id: 9999 })).status, 500);
    // GET with a repeated key is a list (getLibraries?libraries=a&libraries=b).
    const h = Buffer.alloc(32, 9).toString("hex");
    const libs = await (await fetch(`${base}/getLibraries?libraries=${h}&libraries=${h}`)).json();
    assert.deepEqual(libs.result, { "@type": "smc.libraryResult", result: [] });
  } finally {
    await srv.close();
  }
});
