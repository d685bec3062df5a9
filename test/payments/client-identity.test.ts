// Identity is a key, never a name (security review #10.2): a client that claims another client's id is served
// nothing on that client's channel, and a registration proof is good for one connection only.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chatJson, startChain, startPaidNetwork, CLIENT_ID } from "./settlement-fixture.js";
import { ClientNode } from "../../src/client/client.js";
import { nodeSecurity } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { signRegistration } from "../../src/payments/messages.js";
import { ed25519Signer } from "../../src/chain/vouchers.js";
import { keyPairFromSeedHex } from "../../src/payments/ton.js";
import { sessionBinding } from "../../src/protocol/session-binding.js";

test("a client that claims the victim's id is refused and bills nothing to the victim; a registration proof cannot be replayed on another connection", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cocoon-identity-"));
  const chain = await startChain(dir);
  const p = await startPaidNetwork(chain);
  const sec = await nodeSecurity("client", {}, silentLogger);
  // The attacker: a client that says it is the victim (same node id in its Hello) but holds no channel key.
  const attacker = new ClientNode({
    port: 0, proxy: { host: "127.0.0.1", port: p.net.proxy.clientPort }, verifyProxy: sec.verifierFor("proxy"),
    verifyWorkerCert: sec.workerCertVerifier, selfInsecure: true, clientId: CLIENT_ID, log: silentLogger,
  });
  await attacker.start();
  try {
    const { net, meter } = p;
    const victimFirst = await chatJson(net.client.url, "the victim's request");
    assert.equal(victimFirst.status, 200);
    const chargedBefore = BigInt(meter.status().charged as string);

    const stolen = await chatJson(attacker.url, "served on the victim's money?");
    assert.equal(stolen.status, 402, JSON.stringify(stolen.body));
    assert.match(stolen.body.error.message, /no payment channel is registered for this client/);
    assert.equal(BigInt(meter.status().charged as string), chargedBefore, "nothing was charged to the victim's channel");

    // Even the victim's real proof is worthless elsewhere: it signs the victim's connection, not the attacker's.
    const signer = ed25519Signer(keyPairFromSeedHex(chain.boot.seeds.client).secretKey.subarray(0, 32));
    const victimSession = sessionBinding(net.client.link.conn!);
    const attackerSession = sessionBinding(attacker.link.conn!);
    assert.notEqual(victimSession, attackerSession);
    const proof = signRegistration(chain.boot.channel, chain.boot.proxyContract, CLIENT_ID, victimSession, signer);
    await assert.rejects(
      meter.handleClientRequest({ clientId: CLIENT_ID, session: attackerSession, insecure: true }, { type: "register", channel: chain.boot.channel.toString(), proof }),
      /not signed by the channel's client key over this connection's session binding/,
    );

    // The victim is not affected.
    const victimNext = await chatJson(net.client.url, "the victim again", { max_tokens: 5 });
    assert.equal(victimNext.status, 200, JSON.stringify(victimNext.body));
    // The proxy's status lists client names, which grant nothing now.
    const clients = (net.proxy.statusJson().peers as { clients: { id: string }[] }).clients;
    assert.equal(clients.filter((c) => c.id === CLIENT_ID).length, 2);
  } finally {
    await attacker.stop();
    await p.net.close();
    await chain.srv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
