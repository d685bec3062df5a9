import { test } from "node:test";
import assert from "node:assert/strict";
import { keyPairFromSeed } from "@ton/crypto";
import { toNano, WalletContractV5R1 } from "@ton/ton";
import { startChainServer } from "../../src/chain/server.js";
import { makeTonClient } from "../../src/chain/network.js";
import { requestFaucet, WalletService } from "../../src/chain/wallet.js";

test("WalletService on the devnet: faucet, deploy by first send, comment, state-init deploy, seqno wait", async () => {
  const srv = await startChainServer({ port: 0 });
  try {
    const client = makeTonClient("devnet", srv.url, {});
    const w = new WalletService(client, keyPairFromSeed(Buffer.alloc(32, 1)), "devnet");
    const peer = new WalletService(client, keyPairFromSeed(Buffer.alloc(32, 2)), "devnet");
    assert.match(w.friendlyAddress, /^UQ/);
    assert.equal(await w.seqno(), 0);
    await assert.rejects(w.send({ to: peer.address, amount: toNano("1") }), /not enough/);

    await requestFaucet(srv.url, w.address, toNano("10"));
    assert.equal(await w.balance(), toNano("10"));
    await assert.rejects(requestFaucet(srv.url, w.address, 10n ** 30n), /faucet refused: .*cap/);

    const r = await w.sendAndWait({ to: peer.address, amount: toNano("2"), body: "thanks", bounce: false }, 5000);
    assert.deepEqual(r, { seqno: 0, newSeqno: 1 });
    assert.equal(await w.isDeployed(), true);
    assert.ok((await peer.balance()) > toNano("1.99"));
    const [tx] = await client.getTransactions(peer.address, { limit: 1 });
    assert.equal(tx.inMessage!.body.beginParse().skip(32).loadStringTail(), "thanks");

    // Deploy a contract with a state init (here: a third wallet) in the same transfer.
    const third = WalletContractV5R1.create({ workchain: 0, publicKey: keyPairFromSeed(Buffer.alloc(32, 3)).publicKey });
    await w.sendAndWait({ to: third.address, amount: toNano("0.5"), init: third.init }, 5000);
    assert.equal(await client.isContractDeployed(third.address), true);
    assert.equal(await w.seqno(), 2);

    // No send: waiting for a change times out with an explanation.
    await assert.rejects(w.waitForSeqnoChange(2, 300, 50), /seqno stayed 2/);
  } finally {
    await srv.close();
  }
});

test("each network has its own wallet id: testnet -3, devnet its own -42 (different addresses), testnet address form", () => {
  const kp = keyPairFromSeed(Buffer.alloc(32, 1));
  const dev = new WalletService(makeTonClient("devnet", undefined, {}), kp, "devnet");
  const tn = new WalletService(makeTonClient("testnet", undefined, {}), kp, "testnet");
  const main = new WalletService(makeTonClient("mainnet", undefined, {}), kp, "mainnet");
  assert.ok(!dev.address.equals(tn.address));
  assert.ok(!dev.address.equals(main.address), "a devnet wallet is not a mainnet wallet (devnet has its own global id)");
  assert.match(tn.friendlyAddress, /^0Q/);
});
