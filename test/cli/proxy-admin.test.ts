// `cocoon proxy register|unregister|status|unstake` against a real local chain (TVM emulator behind the TON Center
// API) with two staked proxies: the root's owner registers, updates and removes; anyone else, a contract that is
// not a genuine proxy, or a proxy that is unstaking is refused, and nothing changes on chain.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startChainServer } from "../../src/chain/server.js";
import { makeTonClient } from "../../src/chain/network.js";
import { bootstrapDevnetContracts } from "../../src/payments/bootstrap.js";
import { TonAccess } from "../../src/payments/ton.js";
import { decodeProxyEndpoints } from "../../src/chain/proxy-endpoints.js";
import { proxyStatusCommand, registerProxyCommand, unregisterProxyCommand, unstakeCommand } from "../../src/cli/proxy-admin.js";

test("proxy registration on the root: register, update, status, refusals, unregister, unstake", async () => {
  const dir = mkdtempSync(join(tmpdir(), "proxy-admin-"));
  const srv = await startChainServer({ port: 0 });
  try {
    const client = makeTonClient("devnet", srv.url, {});
    const ton = new TonAccess(client, "devnet");
    const boot = await bootstrapDevnetContracts({ client, endpoint: srv.url, models: {}, workers: 0, proxies: 2, deposit: toNano("4") });
    const file = (name: string, seed: string, proxyContract = boot.proxyContract.toString()) => {
      const path = join(dir, `${name}.payments.json`);
      writeFileSync(path, JSON.stringify({ network: "devnet", endpoint: srv.url, root: boot.root.toString(), proxyContract, wallet: { seed }, ledger: `${name}.sqlite` }));
      return path;
    };
    const owner = file("owner", boot.seeds.owner);
    const second = boot.proxies[1]!;
    const operator2 = file("operator-2", second.operatorSeed, second.contract.toString());
    const lines: string[] = [];
    const print = (s: string) => lines.push(s);

    const st0 = await proxyStatusCommand(owner, { print });
    assert.equal(st0.proxies.length, 2);
    assert.ok(st0.proxies.every((p) => p.active && p.endpoints.clients === "127.0.0.1:11002" && !p.endpoints.workers));

    // The owner updates proxy 2's endpoints (re-registering), allow-listing its image in the same transaction.
    const image = "ab".repeat(32);
    await registerProxyCommand(owner, { proxyContract: second.contract.toString(), clients: "127.0.0.1:21002", workers: "proxy2.example:21001", image }, { print });
    let snap = await ton.rootSnapshot(boot.root);
    assert.deepEqual(decodeProxyEndpoints(snap.proxies.get(second.contract.toRawString())!.endpoint), { clients: { host: "127.0.0.1", port: 21002 }, workers: { host: "proxy2.example", port: 21001 } });
    assert.ok(snap.proxyImages.has(image));
    assert.match(lines.at(-1)!, /registered proxy .* clients connect to 127\.0\.0\.1:21002, workers to proxy2\.example:21001/);
    const version = snap.version;

    // Refusals: not the root's owner; not a genuine proxy contract; a malformed endpoint. Nothing changes.
    await assert.rejects(registerProxyCommand(operator2, { clients: "127.0.0.1:1" }, { print }), /only the root's owner .* registers/);
    await assert.rejects(registerProxyCommand(owner, { proxyContract: boot.channel.toString(), clients: "127.0.0.1:1" }, { print }), /cannot register/);
    await assert.rejects(registerProxyCommand(owner, { clients: "no port" }, { print }), /--clients "no port" is not HOST:PORT/);
    await assert.rejects(registerProxyCommand(owner, {}, { print }), /at least one public endpoint/);
    await assert.rejects(unregisterProxyCommand(operator2, {}, { print }), /only the root's owner/);
    assert.equal((await ton.rootSnapshot(boot.root)).version, version);

    // Unregister proxy 2; a second time there is nothing to remove.
    await unregisterProxyCommand(owner, { proxyContract: second.contract.toString() }, { print });
    snap = await ton.rootSnapshot(boot.root);
    assert.equal(snap.proxies.size, 1);
    assert.ok(snap.proxies.has(boot.proxyContract.toRawString()));
    await assert.rejects(unregisterProxyCommand(owner, { proxyContract: second.contract.toString() }, { print }), /is not registered/);

    // Its operator starts unstaking; an unstaking proxy cannot be registered again, and finishing early is refused.
    await assert.rejects(unstakeCommand(owner, "start", { print }), /only the proxy's operator/);
    await unstakeCommand(operator2, "start", { print });
    assert.ok((await ton.proxyState(second.contract)).unstakeAt > 0);
    await assert.rejects(unstakeCommand(operator2, "finish", { print }), /unstake delay is not over/);
    await assert.rejects(registerProxyCommand(owner, { proxyContract: second.contract.toString(), clients: "127.0.0.1:21002" }, { print }), /is not active: .* is unstaking/);
    const st1 = await proxyStatusCommand(owner, { print });
    assert.equal(st1.proxies.length, 1);
  } finally {
    await srv.close();
  }
});
