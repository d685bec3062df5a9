// Channels opened and topped up on demand (src/payments/client-channels.ts), against the real local chain (TVM
// emulator): money only moves within the budget and when the wallet can pay for it; a crash between deploy and record
// is adopted on restart (never a second channel); a top-up racing with spending at the threshold happens once; a
// failed top-up is retried with back-off; and a channel opened with a proxy that never serves gives its deposit back
// through close + withdraw after the close delay.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano, type Address } from "@ton/core";
import { startDevnetChain, type DevnetChain } from "../../src/payments/devnet.js";
import { connectChain, loadPaymentsConfig } from "../../src/payments/config.js";
import { ClientChannels, type ChannelFunding } from "../../src/payments/client-channels.js";
import { PayersByProxy } from "../../src/payments/setup.js";
import { ClientChannel } from "../../src/chain/contracts/ClientChannel.js";
import { STORAGE_RESERVE } from "../../src/chain/contracts/opcodes.js";
import { ed25519Signer } from "../../src/chain/vouchers.js";
import { requestFaucet } from "../../src/chain/wallet.js";
import { closeCommand, withdrawCommand } from "../../src/cli/channel.js";
import type { Logger } from "../../src/util/log.js";

const TON = (s: string) => toNano(s);

/** A logger that keeps what it was told (the tests check what people are told). */
function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const put = (m: string) => void lines.push(m);
  return { lines, info: put, warn: put, error: put, debug: () => {} };
}

async function waitUntil<T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test("client channels on demand: budget, wallet, crash adoption, one top-up per shortfall, retry, refund from a proxy that never serves", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-client-channels-"));
  const modelFile = join(dir, "tiny.gguf");
  writeFileSync(modelFile, randomBytes(64));
  let chain: DevnetChain | undefined;
  const realNow = Date.now;
  const funders: ClientChannels[] = [];
  try {
    // Two proxies; the client's file lists only its channel with the first: the second is one it has no channel with.
    chain = await startDevnetChain({ dir, workers: 1, proxies: 2, modelFile, deposit: TON("3") });
    const c = chain;
    const file = c.files.client;
    const json = JSON.parse(readFileSync(file, "utf8"));
    json.channels = [c.boot.proxies[0]!.channel.toString()];
    json.channel = c.boot.proxies[0]!.channel.toString();
    writeFileSync(file, JSON.stringify(json, null, 2));
    const p2 = c.boot.proxies[1]!.contract;
    const make = async (funding: ChannelFunding, extra: Partial<ConstructorParameters<typeof ClientChannels>[0]> = {}, cfgFile = file) => {
      const config = loadPaymentsConfig(cfgFile);
      const { ton, wallet } = await connectChain(config);
      const log = recordingLog();
      const f = new ClientChannels({ config, ton, wallet, funding, log, retryMinMs: 60_000, ...extra });
      funders.push(f);
      await f.load();
      return { f, ton, wallet, log, config };
    };
    const listed = () => loadPaymentsConfig(file).channels.map((a) => a.toString());
    // What the k-th on-demand channel with proxy 2 is: deterministic from its init data.
    const onDemandAddress = async (nonce: bigint): Promise<Address> => {
      const { ton, wallet } = await connectChain(loadPaymentsConfig(file));
      const [cfg, params] = await Promise.all([ton.proxyConfig(p2), ton.rootParams(c.boot.root)]);
      return ClientChannel.createFromConfig({
        client: wallet.address, clientKey: ed25519Signer(wallet.seed).publicKey, proxyOperator: cfg.owner, proxyVault: p2,
        closeDelay: params.clientCloseDelay, nonce, globalId: ton.globalId,
      }).address;
    };

    await t.test("the budget refuses: nothing moves, the reason is clear", async () => {
      // 1.5 TON already sits in the channel with proxy 1: a 2-TON channel does not fit in 3 TON.
      const { f, wallet, log } = await make({ channelDeposit: TON("2"), maxDeposit: TON("3") });
      const before = await wallet.balance();
      assert.equal(await f.ensureChannel(p2), undefined);
      assert.equal(f.status(p2).state, "no-budget");
      assert.match(String(f.status(p2).lastError), /needs 2 TON and the deposit budget has 1\.5 TON left \(--max-deposit 3 TON, 1\.5 TON deposited/);
      assert.ok(log.lines.some((l) => /raise --max-deposit/.test(l)), "logged for people");
      assert.equal(wallet.transfers, 0);
      assert.equal(await wallet.balance(), before, "no money moved");
      assert.equal(await (await connectChain(loadPaymentsConfig(file))).ton.client.isContractDeployed(await onDemandAddress(0n)), false);
      f.stop();
    });

    await t.test("a wallet that cannot fund it is refused before anything is sent", async () => {
      const poor = join(dir, "poor.payments.json");
      writeFileSync(poor, JSON.stringify({ ...json, wallet: { seed: randomBytes(32).toString("hex") }, channels: [], channel: undefined }));
      const { f, wallet } = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") }, {}, poor);
      assert.equal(await f.ensureChannel(p2), undefined);
      assert.equal(f.status(p2).state, "retrying");
      assert.match(String(f.status(p2).lastError), /holds 0 TON: not enough to open a channel with proxy .* with 1 TON plus fees; fund the wallet/);
      assert.equal(wallet.transfers, 0);
      f.stop();
    });

    let opened: Address | undefined;
    await t.test("a crash between deploy and record: the restart adopts the deployed channel, no second one", async () => {
      const a = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") }, { afterDeploy: () => { throw new Error("simulated crash after the deploy"); } });
      assert.equal(a.f.channelWith(p2), undefined);
      assert.equal(await a.f.ensureChannel(p2), undefined, "the crash stops it before the record");
      a.f.stop();
      const deployed = await onDemandAddress(0n);
      assert.equal((await a.ton.channelState(deployed)).deposited, TON("1"), "the deposit went in");
      assert.ok(!listed().includes(deployed.toString()), "not recorded");

      const b = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") });
      const adopted = await b.f.ensureChannel(p2);
      assert.ok(adopted?.equals(deployed), `adopted ${adopted?.toString()}, deployed ${deployed.toString()}`);
      assert.equal(b.wallet.transfers, 0, "nothing was sent again");
      assert.equal((await b.ton.channelState(deployed)).deposited, TON("1"), "one deposit, not two");
      assert.equal(await b.ton.client.isContractDeployed(await onDemandAddress(1n)), false, "no second channel");
      assert.deepEqual(listed(), [c.boot.proxies[0]!.channel.toString(), deployed.toString()], "recorded in the payments file");
      assert.ok(b.log.lines.some((l) => /adopted channel/.test(l)));
      b.f.stop();

      // The next start finds it in the file.
      const again = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") });
      assert.ok(again.f.channelWith(p2)?.equals(deployed));
      assert.equal(again.f.budget().used, TON("1.5") + TON("1"), "the budget counts both channels, read on chain");
      again.f.stop();
      opened = deployed;
    });

    await t.test("top-up racing with spending at the threshold: one top-up, deposit up by exactly one step", async () => {
      const { f, ton, wallet } = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") });
      const ch = f.channelWith(p2)!;
      const st0 = await ton.channelState(ch);
      // "spent" stands for the vouchers the client signed: just under the threshold at first, growing while it runs.
      let spent = st0.balance - STORAGE_RESERVE - f.topUpBelow + 1n;
      const available = async () => (await ton.channelState(ch)).balance - STORAGE_RESERVE - spent;
      const calls: Promise<void>[] = [];
      for (let i = 0; i < 8; i++) {
        calls.push(f.topUpIfLow(p2, available));
        spent += TON("0.01"); // every answer paid meanwhile asks again
        await new Promise((r) => setImmediate(r));
      }
      await Promise.all(calls);
      const st1 = await ton.channelState(ch);
      assert.equal(st1.deposited - st0.deposited, TON("1"), "one step of --channel-deposit");
      assert.equal(wallet.transfers, 1, "one wallet transaction");
      assert.equal(f.status(p2).topUps, 1);
      assert.equal(f.status(p2).state, "open");
      // Above the threshold now: asking again does nothing.
      await f.topUpIfLow(p2, available);
      assert.equal(wallet.transfers, 1);
      f.stop();
    });

    await t.test("a used-up budget: no top-up, said once, nothing moves", async () => {
      const probe = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") });
      const used = probe.f.budget().used;
      probe.f.stop();
      const { f, wallet, log } = await make({ channelDeposit: TON("1"), maxDeposit: used }, { retryMinMs: 100, retryMaxMs: 200 });
      const before = await wallet.balance();
      await f.topUpIfLow(p2, async () => 0n);
      assert.equal(f.status(p2).state, "no-budget");
      assert.match(String(f.status(p2).lastError), /topping up channel .* needs 1 TON and the deposit budget has 0 TON left/);
      // The retries (every 100-200 ms here) find the same: still nothing sent, and the log says it once.
      await waitUntil("two more retries", async () => (f.status(p2).failures >= 3 ? true : undefined));
      assert.equal(wallet.transfers, 0);
      assert.equal(await wallet.balance(), before);
      assert.equal(log.lines.filter((l) => /deposit budget has 0 TON left/.test(l)).length, 1, log.lines.join("\n"));
      f.stop();
    });

    await t.test("a failed top-up is logged and retried with back-off until it goes through", async () => {
      // Anyone may top a channel up: here a wallet with nothing in it tries first, then gets funded.
      const other = join(dir, "other.payments.json");
      writeFileSync(other, JSON.stringify({ ...json, wallet: { seed: randomBytes(32).toString("hex") }, channels: [opened!.toString()], channel: opened!.toString() }));
      const { f, ton, wallet, log } = await make({ channelDeposit: TON("1"), maxDeposit: TON("10") }, { retryMinMs: 100, retryMaxMs: 400 }, other);
      const before = (await ton.channelState(opened!)).deposited;
      // Dry until a top-up goes through.
      const available = async () => (f.status(p2).topUps > 0 ? TON("1") : 0n);
      await f.topUpIfLow(p2, available);
      assert.equal(f.status(p2).state, "retrying");
      assert.match(String(f.status(p2).lastError), /not enough to top up channel/);
      assert.ok(log.lines.some((l) => /topping up the channel with proxy .* retrying in \d+ s/.test(l)), log.lines.join("\n"));
      await requestFaucet(c.server.url, wallet.address, TON("3"));
      await waitUntil("the retried top-up", async () => (f.status(p2).topUps === 1 && f.status(p2).state === "open" ? true : undefined));
      assert.equal((await ton.channelState(opened!)).deposited - before, TON("1"));
      assert.equal(f.status(p2).state, "open");
      assert.equal(f.status(p2).lastError, undefined);
      f.stop();
    });

    await t.test("a real payer whose spending crosses the threshold tops its channel up once, racing answers included", async () => {
      const payers = new PayersByProxy(loadPaymentsConfig(file), "client-test", recordingLog(), { channelDeposit: TON("1"), maxDeposit: TON("10") });
      try {
        await payers.load();
        const p1 = c.boot.proxies[0]!;
        const payer = payers.get(p1.contract.toRawString())!;
        const inner = await waitUntil("the payer of proxy 1's channel", () => payer.payer);
        const { ton } = await connectChain(loadPaymentsConfig(file));
        const before = await ton.channelState(p1.channel);
        await waitUntil("the payer's first chain read", async () => ((await inner.availableNow()) !== undefined ? true : undefined));
        // Answers priced at the root's prices (the payer signs its own computation): 13,000 completion tokens is
        // 1.3 TON at devnet prices, leaving ~0.19 TON of 1.5, under the 0.25 TON threshold; three arrive at once.
        const answer = (i: number, tokens: number) => payer.afterAnswer({
          requestId: `req-${i}`, model: c.model.name, receiptOk: true,
          usage: { prompt_tokens: 0, completion_tokens: tokens, total_tokens: tokens },
          cost: { prompt_total_cost: "0", completion_total_cost: String(BigInt(tokens) * 100_000n), total_cost: String(BigInt(tokens) * 100_000n) },
        });
        await Promise.all([answer(1, 11_000), answer(2, 1_000), answer(3, 1_000)]);
        assert.equal(inner.spent, TON("1.3"));
        await waitUntil("the top-up", async () => (payers.funder!.status(p1.contract).topUps === 1 && payers.funder!.status(p1.contract).state === "open" ? true : undefined));
        const after = await ton.channelState(p1.channel);
        assert.equal(after.deposited - before.deposited, TON("1"), "one top-up of --channel-deposit");
        // More answers above the threshold now: no second top-up.
        await answer(4, 100);
        await inner.availableNow();
        assert.equal((await ton.channelState(p1.channel)).deposited, after.deposited);
        assert.equal(payers.funder!.status(p1.contract).topUps, 1);
      } finally {
        await payers.close();
      }
    });

    await t.test("a proxy that never serves: close + withdraw after the close delay gives the deposit back", async () => {
      const lines: string[] = [];
      const print = (l: string) => void lines.push(l);
      await closeCommand(file, print, opened!.toString());
      assert.match(lines.join("\n"), /is closing/);
      await assert.rejects(closeCommand(file, print, c.boot.proxies[1]!.channel.toString()), /is not listed in/);
      let offsetS = 0;
      offsetS += c.boot.params.clientCloseDelay + 1;
      c.server.blockchain.now = Math.floor(realNow() / 1000) + offsetS;
      Date.now = () => realNow() + offsetS * 1000;
      const { ton } = await connectChain(loadPaymentsConfig(file));
      const held = (await ton.channelState(opened!)).balance;
      const refunded = await withdrawCommand(file, print);
      assert.equal(refunded, held - STORAGE_RESERVE, "all of it but the storage reserve comes back");
      assert.ok(refunded > TON("2.9"), `3 TON went in and nothing was spent (${refunded})`);
    });
  } finally {
    Date.now = realNow;
    for (const f of funders) f.stop();
    await chain?.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
