// The devnet's chain bootstrap and the client's channel commands (deposit, close, withdraw) against it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, simDefaultImageDigest } from "../../src/payments/devnet.js";
import { loadPaymentsConfig } from "../../src/payments/config.js";
import { closeCommand, depositCommand, withdrawCommand } from "../../src/cli/channel.js";
import { makeTonClient } from "../../src/chain/network.js";
import { TonAccess } from "../../src/payments/ton.js";
import { RootContract, ImageKind } from "../../src/chain/contracts/RootContract.js";
import { ChannelStatus } from "../../src/chain/contracts/ClientChannel.js";

test("devnet bootstrap: root priced and allow-listed, proxy staked, channel funded, configs per role; deposit, close, withdraw", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-devnet-pay-"));
  const modelFile = join(dir, "tiny.gguf");
  writeFileSync(modelFile, "not really a model, only its digest matters here");
  // (how long the bootstrap takes is measured by the devnet's own progress output, not asserted here)
  const chain = await startDevnetChain({ dir, workers: 2, modelFile, deposit: toNano("3") });
  try {
    const client = makeTonClient("devnet", chain.server.url, {});
    const ton = new TonAccess(client, "devnet");
    const root = client.open(RootContract.fromAddress(chain.boot.root));
    assert.deepEqual(await root.getModelPrice(Buffer.from(chain.model.digest, "hex")), { promptPrice: 50_000n, completionPrice: 100_000n });
    assert.equal(await root.getImageAllowed(ImageKind.WORKER, Buffer.from(simDefaultImageDigest(), "hex")), true);
    assert.ok(await root.getProxyInfo(chain.boot.proxyContract), "the proxy is registered in the root");
    assert.equal((await ton.proxyState(chain.boot.proxyContract)).active, true, "the proxy contract holds its stake");

    const proxyCfg = loadPaymentsConfig(chain.files.proxy);
    assert.equal(chain.files.workers.length, 2);
    const clientCfg = loadPaymentsConfig(chain.files.client);
    assert.ok(clientCfg.channel?.equals(chain.boot.channel));
    assert.ok(proxyCfg.proxyContract.equals(chain.boot.proxyContract));
    assert.equal(clientCfg.models.tiny, chain.model.digest);

    const lines: string[] = [];
    const print = (l: string) => lines.push(l);
    const st0 = await ton.channelState(chain.boot.channel);
    await depositCommand(chain.files.client, "2", print);
    const st1 = await ton.channelState(chain.boot.channel);
    assert.equal(st1.deposited - st0.deposited, toNano("2"), "deposit lands in the channel");
    await assert.rejects(withdrawCommand(chain.files.client, print), /run "cocoon client close" first/);

    await closeCommand(chain.files.client, print);
    assert.equal((await ton.channelState(chain.boot.channel)).status, ChannelStatus.CLOSING);
    await assert.rejects(withdrawCommand(chain.files.client, print), /close delay is not over/);
    // Let the chain's clock pass the close delay instead of waiting.
    chain.server.blockchain.now = Math.floor(Date.now() / 1000) + chain.boot.params.clientCloseDelay + 1;
    const realNow = Date.now;
    Date.now = () => realNow() + (chain.boot.params.clientCloseDelay + 1) * 1000;
    let refund: bigint;
    try {
      refund = await withdrawCommand(chain.files.client, print);
    } finally {
      Date.now = realNow;
    }
    assert.ok(refund > toNano("4.9"), `the unspent deposit comes back (${refund})`);
    assert.equal((await ton.channelState(chain.boot.channel)).status, ChannelStatus.CLOSED);

    // A deposit on a closed channel's config opens a new channel and writes it into the config.
    const before = readFileSync(chain.files.client, "utf8");
    const fresh = await depositCommand(chain.files.client, "1.5", print);
    assert.notEqual(fresh, chain.boot.channel.toString());
    assert.notEqual(readFileSync(chain.files.client, "utf8"), before);
    assert.equal(loadPaymentsConfig(chain.files.client).channel!.toString(), fresh);
    assert.ok(lines.some((l) => /opened a new payment channel/.test(l)));
  } finally {
    await chain.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
