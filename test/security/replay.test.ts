// A proxy that replays one sealed request to the same worker (issue #10.1): the worker answers it once and refuses
// the replay, within the lifetime of the key that opened it, including after an identity renewal while the previous
// key is still held. (test/crypto/seal.test.ts shows that even two answers to one request never share keys.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { dial, acceptAnyPeer } from "../../src/protocol/transport.js";
import type { Connection } from "../../src/protocol/connection.js";
import { startTestNetwork, type TestNetwork } from "../helpers/network.js";
import { waitFor } from "../helpers/processes.js";
import { sealRequest, type SealedRequestResult } from "../../src/crypto/index.js";
import { decodeAnswerChunk } from "../../src/protocol/answer-chunk.js";

const meta = { requestId: "req-replayed", model: "m" };
const ANSWER = "the0 secret1 prompt2 text3";
const body = Buffer.from(JSON.stringify({ model: "m", messages: [{ role: "user", content: "the secret prompt text" }], max_tokens: 4 }));

/** Sends exactly these sealed bytes through the proxy (what a proxy replaying them to the worker forwards). */
async function send(conn: Connection, sealed: SealedRequestResult, opener = sealed.opener): Promise<{ text: string; chunks: Uint8Array[] }> {
  const s = conn.open({ op: "inference", ...meta, endpoint: "chat", maxTokens: 4, bodyBytes: sealed.bytes.length, sealed: true, candidates: ["w1"] });
  await s.write(sealed.bytes);
  s.end();
  await s.replyHead();
  let text = "";
  const chunks: Uint8Array[] = [];
  for await (const c of s) {
    chunks.push(new Uint8Array(c));
    text += decodeAnswerChunk(opener.openChunk(c).data).join("");
  }
  return { text, chunks };
}

function workerStats(net: TestNetwork): { rejected: number; completed: number } {
  return (net.workers[0]!.statusJson() as { requests: { rejected: number; completed: number } }).requests;
}

async function rawClient(net: TestNetwork): Promise<Connection> {
  const { conn } = await dial({ host: "127.0.0.1", port: net.proxy.clientPort, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "raw-client" } });
  return conn;
}

test("the same sealed request sent twice to one worker is answered once; the replay is refused and never reaches the engine", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 4 }]);
  const conn = await rawClient(net);
  try {
    const key = net.security.workers[0]!.node.hpke.publicKey;
    const sealed = await sealRequest(body, [{ workerId: "w1", hpkePublicKey: key }], meta);
    const first = await send(conn, sealed);
    assert.equal(first.text, ANSWER);
    assert.ok(sealed.opener.finished);
    const engineCalls = net.upstreams[0]!.requests;
    const before = workerStats(net);

    // The replay: byte-identical envelope and routing metadata, to the same worker.
    const failuresBefore = net.proxy.pool.list()[0]!.failures;
    // The proxy reports the refusal to whoever sent it, does not retry it, and does not count it against the worker.
    await assert.rejects(send(conn, sealed, (await sealRequest(body, [{ workerId: "w1", hpkePublicKey: key }], meta)).opener), /already opened this sealed request.*replayed request is refused/);
    assert.equal(net.upstreams[0]!.requests, engineCalls, "the replay never reached the inference engine");
    assert.equal(workerStats(net).rejected, before.rejected + 1);
    assert.equal(workerStats(net).completed, before.completed);
    assert.equal(net.proxy.pool.list()[0]!.failures, failuresBefore, "an honest refusal is not held against the worker");

    // A fresh sealing of the very same body (what an honest client sends) is served as usual.
    const again = await sealRequest(body, [{ workerId: "w1", hpkePublicKey: key }], { ...meta, requestId: "req-fresh" });
    const s = conn.open({ op: "inference", requestId: "req-fresh", endpoint: "chat", model: "m", maxTokens: 4, bodyBytes: again.bytes.length, sealed: true, candidates: ["w1"] });
    await s.write(again.bytes);
    s.end();
    await s.replyHead();
    let text = "";
    for await (const c of s) text += decodeAnswerChunk(again.opener.openChunk(c).data).join("");
    assert.equal(text, ANSWER);
  } finally {
    conn.close();
    await net.close();
  }
});

test("a replay is still refused after the worker renewed its identity (the previous key, still held, remembers)", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 4 }]);
  let conn = await rawClient(net);
  try {
    const sec = net.security.workers[0]!;
    const oldKey = sec.node.hpke.publicKey;
    const sealed = await sealRequest(body, [{ workerId: "w1", hpkePublicKey: oldKey }], meta);
    assert.equal((await send(conn, sealed)).text, ANSWER);

    await sec.rotate();
    const renewed = new X509Certificate(sec.identity.certPem).fingerprint256;
    await waitFor("the worker to rejoin with its renewed certificate", async () => {
      const w = net.proxy.pool.list()[0];
      return w?.enabled && w.peer.certDer && new X509Certificate(w.peer.certDer).fingerprint256 === renewed ? true : undefined;
    });
    conn.close();
    conn = await rawClient(net);
    const engineCalls = net.upstreams[0]!.requests;
    await assert.rejects(send(conn, sealed, (await sealRequest(body, [{ workerId: "w1", hpkePublicKey: oldKey }], meta)).opener), /already opened this sealed request/);
    assert.equal(net.upstreams[0]!.requests, engineCalls, "the replay under the previous key never reached the engine");
  } finally {
    conn.close();
    await net.close();
  }
});
