// Identities are short-lived (24 h) and renewed at half-life: after a renewal, new handshakes see the new
// certificate, workers reconnect with theirs, and sealed requests keep working, including ones sealed to the old keys.
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { dial, acceptAnyPeer } from "../../src/protocol/transport.js";
import { chat, startTestNetwork } from "../helpers/network.js";
import { waitFor } from "../helpers/processes.js";
import { parseSignedReceipt, sealRequest, verifyReceipt } from "../../src/crypto/index.js";
import { decodeAnswerChunk } from "../../src/protocol/answer-chunk.js";

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

test("after a renewal the proxy serves its new certificate and workers reconnect with theirs; requests keep working", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 4 }]);
  try {
    const before = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: "before" }] });
    assert.equal(before.status, 200);
    const oldProxyCert = fingerprintOf(net.security.proxy.identity.certPem);
    const oldWorkerCert = fingerprintOf(net.security.workers[0]!.identity.certPem);

    await net.security.proxy.rotate();
    const { conn, peer } = await dial({ host: "127.0.0.1", port: net.proxy.clientPort, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "probe" } });
    assert.notEqual(new X509Certificate(peer.certDer!).fingerprint256, oldProxyCert, "new handshakes get the renewed proxy certificate");
    assert.equal(new X509Certificate(peer.certDer!).fingerprint256, fingerprintOf(net.security.proxy.identity.certPem));
    conn.close();

    await net.security.workers[0]!.rotate();
    const newWorkerCert = fingerprintOf(net.security.workers[0]!.identity.certPem);
    assert.notEqual(newWorkerCert, oldWorkerCert);
    await waitFor("the worker to reconnect with its renewed certificate", async () => {
      const w = net.proxy.pool.list()[0];
      return w?.enabled && w.peer.certDer && new X509Certificate(w.peer.certDer).fingerprint256 === newWorkerCert ? true : undefined;
    });
    const after = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: "after" }] });
    assert.equal(after.status, 200, await after.clone().text());
    assert.equal(after.headers.get("x-cocoon-receipt"), "verified");
  } finally {
    await net.close();
  }
});

test("a request sealed to the worker's previous keys is still opened, and its receipt (old key) accepted", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 4 }]);
  try {
    const sec = net.security.workers[0]!;
    const old = { hpkePublicKey: sec.node.hpke.publicKey, receiptPublicKey: sec.node.receipt.publicKey };
    await sec.rotate();
    const renewed = fingerprintOf(sec.identity.certPem);
    await waitFor("the worker to rejoin with its renewed certificate", async () => {
      const w = net.proxy.pool.list()[0];
      return w?.enabled && w.peer.certDer && new X509Certificate(w.peer.certDer).fingerprint256 === renewed ? true : undefined;
    });
    // A client that fetched the candidates just before the renewal seals to the old key.
    const body = Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "sealed to old keys" }], max_tokens: 4 }));
    const sealed = await sealRequest(body, [{ workerId: "w1", hpkePublicKey: old.hpkePublicKey }], { requestId: "req-old-keys", model: "m" });
    const { conn } = await dial({ host: "127.0.0.1", port: net.proxy.clientPort, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "raw-client" } });
    try {
      const s = conn.open({ op: "inference", requestId: "req-old-keys", endpoint: "chat", model: "m", maxTokens: 4, bodyBytes: sealed.bytes.length, sealed: true, candidates: ["w1"] });
      await s.write(sealed.bytes);
      s.end();
      await s.replyHead();
      let text = "";
      for await (const c of s) text += decodeAnswerChunk(sealed.opener.openChunk(c).data).join("");
      assert.equal(text, "sealed0 to1 old2 keys3");
      assert.ok(sealed.opener.finished);
      const receipt = parseSignedReceipt(s.trailer!.receipt);
      assert.ok(verifyReceipt(receipt, old.receiptPublicKey), "signed with the receipt key of the identity the client sealed to");
      assert.equal((net.proxy.statusJson() as any).receipts.verified, 1, "the proxy accepted it");
    } finally {
      conn.close();
    }
  } finally {
    await net.close();
  }
});

test("a client whose candidate list still has a restarted worker's old keys seals again to the fresh list, once", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 4 }]);
  try {
    // The client verifies and caches the candidates with this request...
    const first = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: "first" }] });
    assert.equal(first.status, 200);
    // ...then the worker comes back with new keys and WITHOUT the old ones (as after a restart).
    const sec = net.security.workers[0]!;
    await sec.rotate();
    (net.workers[0] as unknown as { keySets: unknown[] }).keySets.splice(1);
    const renewed = fingerprintOf(sec.identity.certPem);
    await waitFor("the worker to rejoin with its new certificate", async () => {
      const w = net.proxy.pool.list()[0];
      return w?.enabled && w.peer.certDer && new X509Certificate(w.peer.certDer).fingerprint256 === renewed ? true : undefined;
    });
    const failedBefore = (net.workers[0]!.statusJson() as { requests: { failed: number } }).requests.failed;
    const again = await chat(net.client.url, { model: "m", messages: [{ role: "user", content: "sealed to stale keys first" }] });
    assert.equal(again.status, 200, await again.clone().text());
    assert.equal(again.headers.get("x-cocoon-receipt"), "verified");
    const failedAfter = (net.workers[0]!.statusJson() as { requests: { failed: number } }).requests.failed;
    assert.ok(failedAfter - failedBefore <= 1, "at most one attempt went to the stale keys");
  } finally {
    await net.close();
  }
});
