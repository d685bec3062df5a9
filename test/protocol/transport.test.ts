// Transport hardening: sockets that never finish a handshake are closed, connections per address are capped,
// the proof of work runs before the verifier, and refusals are rate-limited.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import tls from "node:tls";
import { createNodeIdentity } from "../../src/tee/identity.js";
import {
  acceptAnyPeer,
  checkProofOfWork,
  dial,
  listen,
  solveProofOfWork,
  type Listener,
  type ListenOptions,
  type TlsIdentity,
} from "../../src/protocol/transport.js";
import { encodeFrame, FrameType } from "../../src/protocol/frame.js";
import { RateLimitedReporter } from "../../src/util/log.js";

let identity: TlsIdentity;
before(async () => {
  identity = (await createNodeIdentity({ role: "proxy" })).tls;
});

async function startListener(o: Partial<ListenOptions> = {}): Promise<{ listener: Listener; rejected: Array<{ reason: string; count: number }> }> {
  const rejected: Array<{ reason: string; count: number }> = [];
  const listener = await listen({
    host: "127.0.0.1",
    port: 0,
    identity,
    requestClientCert: false,
    verifyPeer: acceptAnyPeer,
    connection: { role: "proxy", nodeId: "P" },
    onConnection: ({ conn }) => conn.on("stream", (s) => (s.reply({ ok: true }), s.end())),
    onRejected: (reason, _remote, count) => rejected.push({ reason, count }),
    ...o,
  });
  return { listener, rejected };
}

function closedWithin(socket: net.Socket, ms: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket still open after ${ms} ms`)), ms);
    socket.resume(); // a paused socket never sees the peer's close
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

async function until(cond: () => boolean, ms = 2_000): Promise<void> {
  for (const t0 = Date.now(); !cond(); ) {
    if (Date.now() - t0 > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function rawConnect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: "127.0.0.1", ...(localAddress ? { localAddress } : {}) }, () => resolve(s));
    s.on("error", () => {});
    s.once("error", reject);
  });
}

test("proof of work: a solution checks, a wrong nonce does not", async () => {
  const challenge = Buffer.from([12, ...Buffer.alloc(16, 7)]);
  const t0 = performance.now();
  const nonce = await solveProofOfWork(challenge, 12);
  const ms = performance.now() - t0;
  assert.ok(checkProofOfWork(challenge, nonce, 12));
  assert.ok(!checkProofOfWork(Buffer.from([12, ...Buffer.alloc(16, 8)]), nonce, 16));
  console.log(`# solving 12 bits took ${ms.toFixed(1)} ms`);
});

test("dial completes the proof of work and the protocol handshake", async () => {
  const { listener } = await startListener({ powBits: 10 });
  const { conn } = await dial({ host: "127.0.0.1", port: listener.port, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "C" } });
  const s = conn.open({ op: "x" });
  s.end();
  assert.deepEqual(await s.replyHead(), { ok: true });
  assert.equal(conn.peerHello?.node, "P");
  conn.close();
  await listener.close();
});

test("dial still works with a listener that asks no proof of work", async () => {
  const { listener } = await startListener({ powBits: 0 });
  const { conn } = await dial({ host: "127.0.0.1", port: listener.port, verifyPeer: acceptAnyPeer, connection: { role: "client", nodeId: "C" } });
  assert.equal(conn.peerHello?.node, "P");
  conn.close();
  await listener.close();
});

test("idle TCP sockets and a socket that never sends a ClientHello are closed at the handshake timeout", async () => {
  const { listener, rejected } = await startListener({ handshakeTimeoutMs: 400 });
  const sockets = await Promise.all(Array.from({ length: 20 }, () => rawConnect(listener.port)));
  await until(() => listener.stats().connections === 20);
  const times = await Promise.all(sockets.map((s) => closedWithin(s, 3_000)));
  console.log(`# 20 idle sockets closed after ${Math.min(...times)}..${Math.max(...times)} ms (timeout 400 ms)`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(listener.stats().connections, 0);
  assert.equal(listener.stats().refused.handshake_timeout, 20);
  // Rate-limited: one line at once, the others summed later (or not yet), never 20 lines.
  assert.ok(rejected.length <= 2, `expected at most 2 log lines, got ${rejected.length}`);
  await listener.close();
});

test("a slow TLS handshake (ClientHello byte by byte) is cut at the deadline, not kept alive by activity", async () => {
  const { listener } = await startListener({ handshakeTimeoutMs: 600 });
  const s = await rawConnect(listener.port);
  const iv = setInterval(() => !s.destroyed && s.write(Buffer.from([0x16])), 100);
  const ms = await closedWithin(s, 3_000);
  clearInterval(iv);
  assert.ok(ms < 2_000, `closed after ${ms} ms`);
  await listener.close();
});

test("a TLS peer that never answers the proof-of-work challenge is closed at the deadline, unverified", async () => {
  let verified = 0;
  const { listener } = await startListener({ handshakeTimeoutMs: 500, verifyPeer: async () => (verified++, { description: "x", insecure: true }) });
  const s = tls.connect({ host: "127.0.0.1", port: listener.port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
  s.on("error", () => {});
  await new Promise((r) => s.once("secureConnect", r));
  await closedWithin(s, 3_000);
  assert.equal(verified, 0);
  await listener.close();
});

test("a wrong proof of work is refused before verification", async () => {
  let verified = 0;
  const { listener, rejected } = await startListener({ powBits: 16, verifyPeer: async () => (verified++, { description: "x", insecure: true }) });
  const s = tls.connect({ host: "127.0.0.1", port: listener.port, rejectUnauthorized: false, minVersion: "TLSv1.3" });
  s.on("error", () => {});
  await new Promise((r) => s.once("secureConnect", r));
  s.write(encodeFrame(FrameType.Solution, 0, Buffer.alloc(8, 1)));
  await closedWithin(s, 3_000);
  assert.equal(verified, 0);
  assert.match(rejected[0]!.reason, /no valid proof of work/);
  await listener.close();
});

test("connections per address are capped: extra ones are closed at once", async () => {
  const { listener } = await startListener({ maxConnectionsPerAddress: 5, handshakeTimeoutMs: 5_000 });
  const sockets = await Promise.all(Array.from({ length: 8 }, () => rawConnect(listener.port)));
  try {
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 1_000).then(() => true, () => false)));
    assert.equal(closed.filter(Boolean).length, 3);
    // Another address still gets in.
    const other = await rawConnect(listener.port, "127.0.0.2");
    sockets.push(other);
    await assert.rejects(closedWithin(other, 300));
    assert.deepEqual(listener.stats().refused, { too_many_connections: 3 });
  } finally {
    for (const s of sockets) s.destroy();
    await listener.close();
  }
});

test("the rate-limited reporter passes one line per kind per interval, then a count", async () => {
  const lines: Array<[string, number]> = [];
  const r = new RateLimitedReporter(200, (msg, _remote, count) => lines.push([msg, count]));
  for (let i = 0; i < 100; i++) r.report("tls", `failure ${i}`, "x");
  r.report("pow", "other kind", "x");
  assert.deepEqual(lines, [
    ["failure 0", 1],
    ["other kind", 1],
  ]);
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(lines.length, 3);
  assert.match(lines[2]![0], /failure 99 \(99 like it in the last 0 s/);
  assert.equal(lines[2]![1], 99);
});

let keepAlive: NodeJS.Timeout;
before(() => (keepAlive = setInterval(() => {}, 1000)));
after(() => clearInterval(keepAlive));
