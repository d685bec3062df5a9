// A worker whose image measurement is not allowed is refused, with the rule and the measured value on both sides.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProxyNode } from "../../src/proxy/proxy.js";
import { WorkerNode } from "../../src/worker/worker.js";
import { OpenAiBackend } from "../../src/worker/backends/openai.js";
import { startFakeUpstream } from "../../src/dev/fake-upstream.js";
import { nodeSecurity } from "../../src/cli/security.js";
import { silentLogger } from "../../src/util/log.js";
import { waitFor } from "../helpers/processes.js";

async function attempt(allowedWorkerImages: (sim: string) => string[]) {
  const upstream = await startFakeUpstream({ model: "m" });
  const workerSec = await nodeSecurity("worker", {}, silentLogger);
  const dir = mkdtempSync(join(tmpdir(), "policy-"));
  const file = join(dir, "policy.json");
  // The sim image digest is deterministic: learn it from the worker's own certificate.
  const { verifyPeerCertificate } = await import("../../src/tee/ratls.js");
  const { DEV_POLICY } = await import("../../src/tee/policy.js");
  const self = await verifyPeerCertificate(workerSec.node.tls.certDer, DEV_POLICY);
  writeFileSync(file, JSON.stringify({ name: "test-allowlist", mode: "dev", allowSim: true, measurements: { worker: allowedWorkerImages(self.imageDigest) } }));
  const proxySec = await nodeSecurity("proxy", { policy: file }, silentLogger);
  const proxy = new ProxyNode({ identity: proxySec.identity, workerPort: 0, clientPort: 0, statusPort: 0, verifyWorker: proxySec.verifierFor("worker"), verifyClient: proxySec.verifierFor("client"), log: silentLogger });
  await proxy.start();
  const backend = new OpenAiBackend({ upstream: upstream.url });
  await backend.start();
  const worker = new WorkerNode({ proxies: [{ host: "127.0.0.1", port: proxy.workerPort }], backend, capacity: 1, identity: workerSec.identity, verifyProxy: workerSec.verifierFor("proxy"), log: silentLogger });
  await worker.start();
  return {
    proxy,
    worker,
    simDigest: self.imageDigest,
    async close() {
      await worker.stop();
      await proxy.stop();
      await upstream.close();
    },
  };
}

test("a worker image outside the allow-list is refused; both sides say which rule and what was measured", async () => {
  const net = await attempt(() => ["ab".repeat(32)]);
  try {
    const refusal = await waitFor("the proxy to refuse", async () => (net.proxy.statusJson() as any).errors.lastRefusal as string | undefined);
    assert.match(refusal, /policy\.measurement/);
    assert.ok(refusal.includes(net.simDigest), "the proxy names the measured image digest");
    const workerSide = await waitFor("the worker to learn why", async () => {
      const peer = (net.worker.statusJson() as any).peers[0];
      return peer.lastError as string | undefined;
    });
    assert.match(workerSide, /policy\.measurement/);
    assert.match(workerSide, /add ".*" to measurements\.worker/);
    assert.equal(net.proxy.pool.size, 0);
    // Counted by the rule that refused it (what /metrics exports as cocoon_attestation_refusals_by_rule_total).
    const byRule = (net.proxy.statusJson() as any).listeners.workers.refusedByRule as Record<string, number>;
    assert.ok(byRule["policy.measurement"]! >= 1, JSON.stringify(byRule));
    const metrics = await (await fetch(`${net.proxy.statusUrl!.replace(/\/status$/, "")}/metrics`)).text();
    assert.match(metrics, /cocoon_attestation_refusals_by_rule_total\{[^}]*listener="workers"[^}]*rule="policy\.measurement"[^}]*\} [1-9]/);
  } finally {
    await net.close();
  }
});

test("the same worker is accepted once its measurement is allowed", async () => {
  const net = await attempt((sim) => [sim]);
  try {
    await waitFor("the worker to join", async () => (net.proxy.pool.size === 1 ? true : undefined));
  } finally {
    await net.close();
  }
});
