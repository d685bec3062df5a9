// The client's list of channels, against the real local chain: a deposit while the channel is closing opens a new
// one and keeps the old one listed (its money is never lost track of), `channels` shows every one with its state and
// balances, and `withdraw` finishes every closable channel in one wallet transaction and says what it did for each.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain } from "../../src/payments/devnet.js";
import { loadPaymentsConfig, parsePaymentsConfig, connectChain } from "../../src/payments/config.js";
import { channelsCommand, closeCommand, depositCommand, withdrawCommand } from "../../src/cli/channel.js";
import { makeTonClient } from "../../src/chain/network.js";
import { TonAccess } from "../../src/payments/ton.js";
import { ChannelStatus } from "../../src/chain/contracts/ClientChannel.js";

test("channels: deposit on a closing channel keeps it listed; channels shows all; withdraw finishes every closable one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-channels-"));
  const modelFile = join(dir, "tiny.gguf");
  writeFileSync(modelFile, "not really a model, only its digest matters here");
  const chain = await startDevnetChain({ dir, workers: 1, modelFile, deposit: toNano("3") });
  const realNow = Date.now;
  /** Moves the chain's clock and ours together (the wallet's messages expire by our clock). */
  let offsetS = 0;
  const advance = (s: number) => {
    offsetS += s;
    chain.server.blockchain.now = Math.floor(realNow() / 1000) + offsetS;
    Date.now = () => realNow() + offsetS * 1000;
  };
  try {
    const file = chain.files.client;
    const ton = new TonAccess(makeTonClient("devnet", chain.server.url, {}), "devnet");
    const delay = chain.boot.params.clientCloseDelay;
    const A = chain.boot.channel.toString();
    const lines: string[] = [];
    const print = (l: string) => lines.push(l);

    // A file from before the list existed names only `channel`: it is read as a list of that one.
    assert.equal(JSON.parse(readFileSync(file, "utf8")).channels, undefined);
    assert.deepEqual(loadPaymentsConfig(file).channels.map(String), [A]);

    await closeCommand(file, print);
    lines.length = 0;
    const B = await depositCommand(file, "2", print);
    assert.notEqual(B, A, "a closing channel takes no deposit: a new one is opened");
    const saved = JSON.parse(readFileSync(file, "utf8")) as { channel: string; channels: string[] };
    assert.equal(saved.channel, B, "the new channel is the current one (the client role pays from it)");
    assert.deepEqual(saved.channels, [A, B], "the closing channel stays listed");
    assert.match(lines.join("\n"), new RegExp(`channel ${A} is closing .*stays listed.*cocoon client withdraw`));

    lines.length = 0;
    const infos = await channelsCommand(file, print);
    assert.deepEqual(infos.map((i) => [i.address, i.state, i.current]), [[A, "closing", false], [B, "open", true]]);
    assert.ok(infos[0]!.withdrawable! > toNano("2.9") && infos[0]!.withdrawableAt! > Math.floor(Date.now() / 1000), "A holds its deposit until the delay is over");
    assert.ok(infos[1]!.deposited! > toNano("1.9") && infos[1]!.deposited! <= toNano("2"), `B holds the new deposit (${infos[1]!.deposited})`);
    assert.match(lines.join("\n"), /2 channel\(s\)[\s\S]*closing[\s\S]*\(current\): open[\s\S]*still hold/);

    // Before the delay nothing can come back: withdraw fails and says why for each channel.
    await assert.rejects(withdrawCommand(file, print), (err: Error) => {
      assert.match(err.message, /nothing to withdraw yet/);
      assert.match(err.message, new RegExp(`${A}: closing; the close delay is not over: withdraw in \\d+ s`));
      assert.match(err.message, new RegExp(`${B} \\(current\\): open.*run "cocoon client close" first`));
      return true;
    });

    // B closes too, then C is opened and closed, D is current: after the delay, B and C come back in ONE transaction.
    advance(delay + 1);
    lines.length = 0;
    const refundA = await withdrawCommand(file, print);
    assert.ok(refundA > toNano("2.9"), `A's unspent deposit comes back (${refundA})`);
    assert.equal((await ton.channelState(chain.boot.channel)).status, ChannelStatus.CLOSED);
    assert.match(lines.join("\n"), new RegExp(`${A}: withdrew`));
    assert.match(lines.join("\n"), new RegExp(`${B} \\(current\\): open.*not closable yet`));

    await closeCommand(file, print);
    const C = await depositCommand(file, "1.5", print);
    await closeCommand(file, print);
    const D = await depositCommand(file, "1", print);
    assert.deepEqual(loadPaymentsConfig(file).channels.map(String), [A, B, C, D]);
    assert.equal(loadPaymentsConfig(file).channel!.toString(), D);

    advance(delay + 1);
    const { wallet } = await connectChain(parsePaymentsConfig(JSON.parse(readFileSync(file, "utf8")), dir));
    const seqno = await wallet.seqno();
    lines.length = 0;
    const refundBC = await withdrawCommand(file, print);
    if (process.env.SHOW_CHANNELS_OUTPUT) console.error(lines.join("\n"));
    assert.equal(await wallet.seqno(), seqno + 1, "every closable channel is finished in one wallet transaction");
    assert.ok(refundBC > toNano("3.4"), `B's 2 TON and C's 1.5 TON come back, less gas (${refundBC})`);
    const report = lines.join("\n");
    assert.match(report, new RegExp(`${A}: closed already`));
    assert.match(report, new RegExp(`${B}: withdrew`));
    assert.match(report, new RegExp(`${C}: withdrew`));
    assert.match(report, new RegExp(`${D} \\(current\\): open`));
    const final = await channelsCommand(file, () => {});
    assert.deepEqual(final.map((i) => i.state), ["closed", "closed", "closed", "open"]);
  } finally {
    Date.now = realNow;
    await chain.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("channels: the payments file's list is read with the current channel added and duplicates dropped", () => {
  const base = { network: "devnet", root: "EQDHboZ1HBH_G8ZfhY1w4jWJUkFrh2OMwcB0m9JPPZwKObXr", proxyContract: "EQD9vHIG0p5hm_xP_uJmnOR5UItYGAb9LxG5iX7gr7XtwgXd", wallet: { seed: "00".repeat(32) }, ledger: ":memory:" };
  const [x, y] = [base.root, base.proxyContract];
  assert.deepEqual(parsePaymentsConfig({ ...base }).channels, []);
  assert.deepEqual(parsePaymentsConfig({ ...base, channel: x }).channels.map(String), [x]);
  assert.deepEqual(parsePaymentsConfig({ ...base, channel: y, channels: [x] }).channels.map(String), [x, y]);
  assert.deepEqual(parsePaymentsConfig({ ...base, channel: x, channels: [x, y, x] }).channels.map(String), [x, y]);
  assert.throws(() => parsePaymentsConfig({ ...base, channels: ["nope"] }), /channels\[0\] "nope" is not a TON address/);
});
