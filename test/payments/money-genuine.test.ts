// Money audit (#18): contracts are recognised by their ADDRESS (pinned code + standard initial data for the config
// their getters report), never by their getters. On the local chain (the devnet's, over HTTP), with the real proxy
// meter and the real payments setup: a fake channel that reports 999,999 TON, the genuine channel code deployed
// with a fake initial `redeemed`, and the genuine proxy code deployed with a fake initial `stake` are all refused,
// with the reason.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { Address, beginCell, Cell, contractAddress, toNano } from "@ton/core";
import { runTolkCompiler } from "@ton/tolk-js";
import { startChain, CLIENT_ID, type Chain } from "./settlement-fixture.js";
import { startProxyPayments, startWorkerPayments } from "../../src/payments/setup.js";
import { assertGenuineChannel, assertGenuineProxy, keyPairFromSeedHex } from "../../src/payments/ton.js";
import { requestFaucet, WalletService } from "../../src/chain/wallet.js";
import { ed25519Signer } from "../../src/chain/vouchers.js";
import { signRegistration } from "../../src/payments/messages.js";
import { ClientChannel, clientChannelConfigToCell, type ClientChannelConfig } from "../../src/chain/contracts/ClientChannel.js";
import { ProxyContract, proxyConfigToCell, type ProxyContractConfig } from "../../src/chain/contracts/ProxyContract.js";
import { contractCode } from "../../src/chain/compile.js";
import { DEVNET_GLOBAL_ID } from "../../src/chain/network.js";

/** A connection's session binding (src/protocol/session-binding.ts); any 32 bytes do for a meter driven directly. */
const SESSION = "ab".repeat(32);

const TON = 1_000_000_000n;

/** A contract that answers the channel getters with whatever its data says, and reports 999,999 TON. */
const FAKE_CHANNEL_SOURCE = `tolk 1.3
struct FakeConfig { client: address; op: address; vault: address; closeDelay: uint32; nonce: uint64; globalId: int32 }
struct FakeData { clientKey: uint256; config: Cell<FakeConfig> }
fun onInternalMessage(in: InMessage) {}
get fun channel_state(): (int, int, coins, coins, coins) { return (0, 0, ton("999999"), 0, ton("999999")); }
get fun channel_config(): (address, uint256, address, address, int, int, int) {
    val d = FakeData.fromCell(contract.getData());
    val c = d.config.load();
    return (c.client, d.clientKey, c.op, c.vault, c.closeDelay, c.nonce, c.globalId);
}
`;

async function compileFake(): Promise<Cell> {
  const r = await runTolkCompiler({ entrypointFileName: "fake.tolk", fsReadCallback: () => FAKE_CHANNEL_SOURCE });
  if (r.status === "error") throw new Error(r.message);
  return Cell.fromBase64(r.codeBoc64);
}

async function withChain(fn: (chain: Chain, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-money-"));
  const chain = await startChain(dir);
  try {
    await fn(chain, dir);
  } finally {
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A funded wallet of the attacker (the devnet faucet pays it). */
async function attackerWallet(chain: Chain): Promise<WalletService> {
  const w = new WalletService(chain.ton.client, keyPairFromSeedHex(randomBytes(32).toString("hex")), "devnet");
  await requestFaucet(chain.srv.url, w.address, toNano("3"));
  return w;
}

async function deploy(chain: Chain, w: WalletService, code: Cell, data: Cell): Promise<Address> {
  const address = contractAddress(0, { code, data });
  await w.sendBatch([{ to: address, value: toNano("0.05"), init: { code, data }, bounce: false }]);
  assert.ok(await chain.ton.client.isContractDeployed(address), "the attacker's contract is deployed");
  return address;
}

test("a fake channel (other code, 999,999 TON reported) and the real code with a fake initial redeemed are refused by the proxy", async () => {
  await withChain(async (chain) => {
    const meter = await startProxyPayments(chain.configs.proxy);
    try {
      const attacker = await attackerWallet(chain);
      const key = ed25519Signer(attacker.seed);
      const config: ClientChannelConfig = {
        client: attacker.address, clientKey: key.publicKey, proxyOperator: chain.boot.wallets.operator,
        proxyVault: chain.boot.proxyContract, closeDelay: chain.boot.params.clientCloseDelay, nonce: 1n, globalId: chain.ton.globalId,
      };
      const register = (channel: Address) => meter.handleClientRequest({ clientId: CLIENT_ID, session: SESSION, insecure: false },
        { type: "register", channel: channel.toString(), proof: signRegistration(channel, chain.boot.proxyContract, CLIENT_ID, SESSION, key) });

      // 1. a 0.05 TON contract whose getters claim a channel with 999,999 TON (before the fix: registered with
      //    999,999 TON of capacity, so the proxy served it on credit it would never collect)
      const std = clientChannelConfigToCell(config);
      const fakeData = beginCell().storeBuffer(key.publicKey).storeRef(std.refs[0]!).endCell();
      const fake = await deploy(chain, attacker, await compileFake(), fakeData);
      const view = await chain.ton.channel(fake);
      assert.equal(view.state.balance, 999_999n * TON, "the fake's getters look right");
      assert.ok(view.config.proxyVault.equals(chain.boot.proxyContract));
      await assert.rejects(register(fake), /not a genuine Cocoon client channel: it runs other code \(hash [0-9a-f]{64}, the pinned client_channel code hashes to [0-9a-f]{64}\)/);

      // 2. the genuine code, deployed with a fake initial redeemed = 1000 TON (capacity = redeemed + balance)
      const forged = beginCell().storeBuffer(key.publicKey).storeUint(0, 2).storeUint(0, 32).storeCoins(0n).storeCoins(1000n * TON)
        .storeRef(std.refs[0]!).endCell();
      const realCodeFakeData = await deploy(chain, attacker, contractCode("client_channel"), forged);
      assert.equal((await chain.ton.channelState(realCodeFakeData)).redeemed, 1000n * TON);
      await assert.rejects(register(realCodeFakeData), /not a genuine Cocoon client channel: it runs the pinned code but was deployed with non-standard initial data/);
      // the message also says where the genuine channel for that config would be
      await assert.rejects(register(realCodeFakeData), new RegExp(`would be at ${ClientChannel.expectedAddress(config).toString()}`));
      assert.equal((meter.status().channels as unknown[]).length, 0, "nothing was registered");

      // the genuine channel of the devnet registers fine
      const clientSigner = ed25519Signer(keyPairFromSeedHex(chain.boot.seeds.client).secretKey.subarray(0, 32));
      const ok = await meter.handleClientRequest({ clientId: CLIENT_ID, session: SESSION, insecure: false },
        { type: "register", channel: chain.boot.channel.toString(), proof: signRegistration(chain.boot.channel, chain.boot.proxyContract, CLIENT_ID, SESSION, clientSigner) });
      assert.equal(ok.ok, true);
    } finally {
      await meter.close();
    }
  });
});

test("a proxy contract deployed with a fake initial stake is refused by the worker's (and the proxy's) setup", async () => {
  await withChain(async (chain) => {
    const attacker = await attackerWallet(chain);
    const key = ed25519Signer(attacker.seed);
    const config: ProxyContractConfig = {
      owner: attacker.address, root: chain.boot.root, signingKey: key.publicKey, minStake: chain.boot.params.minProxyStake,
      unstakeDelay: chain.boot.params.proxyUnstakeDelay, globalId: chain.ton.globalId,
    };
    const std = proxyConfigToCell(config);
    // stake = 1000 TON in the initial data, 0.05 TON on the balance: "active" to anyone who trusts the getters
    const forged = beginCell().storeBuffer(key.publicKey).storeBit(false).storeCoins(1000n * TON).storeUint(0, 32)
      .storeCoins(0n).storeCoins(0n).storeCoins(0n).storeBit(false).storeRef(std.refs[0]!).endCell();
    const fake = await deploy(chain, attacker, contractCode("proxy"), forged);
    const st = await chain.ton.proxyState(fake);
    assert.equal(st.stake, 1000n * TON);
    assert.equal(st.active, true, "the getters say: active, 1000 TON staked");
    const why = /not a genuine Cocoon proxy contract: it runs the pinned code but was deployed with non-standard initial data \(e\.g\. a non-zero redeemed, deposit or stake\)/;
    await assert.rejects(chain.ton.assertGenuineProxy(fake, chain.boot.root), why);
    await assert.rejects(startWorkerPayments({ ...chain.configs.worker, proxyContract: fake }, {}), why);
    await assert.rejects(startProxyPayments({ ...chain.configs.proxy, proxyContract: fake }), why);
    // the devnet's own proxy contract is genuine, under the devnet's root and network
    const cfg = await chain.ton.assertGenuineProxy(chain.boot.proxyContract, chain.boot.root);
    assert.equal(cfg.globalId, DEVNET_GLOBAL_ID);
    await assert.rejects(chain.ton.assertGenuineProxy(chain.boot.proxyContract, attacker.address), /serves under root/);
    // the devnet's payout key is the operator's own, so the root did not approve it: the stake backs no voucher
    assert.equal((await chain.ton.proxyState(chain.boot.proxyContract)).keyApproved, false);
  });
});

test("assertGenuine* (pure): what differs is named; a config of another network is refused", () => {
  const cfg: ProxyContractConfig = { owner: addr(1), root: addr(2), signingKey: Buffer.alloc(32, 7), minStake: 1n, unstakeDelay: 60, globalId: -239 };
  const proxy = ProxyContract.expectedAddress(cfg);
  assertGenuineProxy(proxy, cfg, { globalId: -239, root: addr(2) });
  assert.throws(() => assertGenuineProxy(proxy, cfg, { globalId: -3 }), /global id -239, this is -3/);
  assert.throws(() => assertGenuineProxy(proxy, cfg, { root: addr(3) }), /serves under root/);
  assert.throws(() => assertGenuineProxy(addr(9), cfg), /not a genuine Cocoon proxy contract: its code or its initial data is not the standard one/);
  assert.throws(() => assertGenuineProxy(addr(9), cfg, { deployedCode: null }), /no code is deployed there/);
  const ch: ClientChannelConfig = { client: addr(3), clientKey: Buffer.alloc(32, 1), proxyOperator: addr(1), proxyVault: proxy, closeDelay: 60, nonce: 1n, globalId: -239 };
  assertGenuineChannel(ClientChannel.expectedAddress(ch), ch, { globalId: -239 });
  assert.throws(() => assertGenuineChannel(ClientChannel.expectedAddress({ ...ch, nonce: 2n }), ch), /would be at/);
  assert.throws(() => assertGenuineChannel(ClientChannel.expectedAddress(ch), ch, { globalId: DEVNET_GLOBAL_ID }), /global id -239, this is -42/);
});

function addr(n: number): Address {
  return new Address(0, Buffer.alloc(32, n));
}
