// A worker is whoever its attestation binds (security review #10.6): a worker announcing an id other than the one its
// claims carry is refused by the proxy, so nobody can take another worker's place (or its payouts) by name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startTestNetwork } from "../helpers/network.js";
import { nodeSecurity, sealingKeysOf } from "../../src/cli/security.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { silentLogger } from "../../src/util/log.js";

test("a worker announcing an id its attestation does not bind is refused; the honest one keeps serving", async () => {
  const net = await startTestNetwork([{ model: "m", tokens: 3 }]);
  const sec = await nodeSecurity("worker", { nodeId: "rogue-attested" }, silentLogger);
  const backend = new OpenAiBackend({ upstream: net.upstreams[0]!.url });
  await backend.start();
  const warnings: string[] = [];
  const rogue = new WorkerNode({
    proxies: [{ host: "127.0.0.1", port: net.proxy.workerPort }], backend, capacity: 4, identity: () => sec.identity,
    verifyProxy: sec.verifierFor("proxy"), sealing: sealingKeysOf(sec.node), workerId: "w1", log: { ...silentLogger, warn: (m) => warnings.push(m) },
  });
  await rogue.start();
  try {
    // It connects, announces itself as "w1" (the honest worker's id) and is sent away with the reason.
    for (let i = 0; i < 200 && !warnings.some((w) => /attestation binds/.test(w)); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(warnings.some((w) => /announces worker id "w1" but its attestation binds "rogue-attested"/.test(w)), warnings.join("\n"));
    const ids = net.proxy.pool.list().map((w) => w.id);
    assert.deepEqual(ids, ["w1"]);
    assert.equal(net.proxy.pool.list()[0]!.peer.certDer?.equals(sec.node.tls.certDer ?? Buffer.alloc(0)), false, "w1 in the pool is still the honest worker");
    const r = await fetch(`${net.client.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }) });
    assert.equal(r.status, 200);
  } finally {
    await rogue.stop();
    await net.close();
  }
});
