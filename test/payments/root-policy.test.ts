// The attestation allow-lists come from the root contract: a worker image the root allows is accepted; once the
// owner removes it on chain, the next refresh refuses it, naming the rule and the image to add back.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toNano } from "@ton/core";
import { startDevnetChain, simDefaultImageDigest } from "../../src/payments/devnet.js";
import { RootPolicy } from "../../src/payments/root-policy.js";
import { TonAccess, keyPairFromSeedHex } from "../../src/payments/ton.js";
import { makeTonClient } from "../../src/chain/network.js";
import { WalletService } from "../../src/chain/wallet.js";
import { ImageKind, setImageBody } from "../../src/chain/contracts/RootContract.js";
import { DEV_POLICY } from "../../src/tee/policy.js";
import { verifyPeerCertificate, EvidenceCache } from "../../src/tee/ratls.js";
import { createNodeIdentity } from "../../src/tee/identity.js";

test("root allow-lists drive attestation: allowed, then removed on chain and refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "root-policy-"));
  const modelFile = join(dir, "m.gguf");
  writeFileSync(modelFile, "stand-in weights: only the digest matters");
  const chain = await startDevnetChain({ dir, workers: 1, modelFile, deposit: toNano("2") });
  try {
    const client = makeTonClient("devnet", chain.server.url, {});
    const ton = new TonAccess(client, "devnet");
    const rp = await RootPolicy.start(DEV_POLICY, ton, chain.boot.root, undefined, 3_600_000);
    try {
      assert.deepEqual(rp.current.measurements.worker, [simDefaultImageDigest()]);
      assert.deepEqual(rp.current.models, [chain.model.digest]);
      const worker = await createNodeIdentity({ role: "worker", model: { name: "m", digest: chain.model.digest } });
      const ok = await verifyPeerCertificate(worker.tls.certDer, rp.current, { expectedRole: "worker", cache: new EvidenceCache() });
      assert.equal(ok.imageDigest, simDefaultImageDigest());
      // Weights the root does not list are refused.
      const other = await createNodeIdentity({ role: "worker", model: { name: "m", digest: "ab".repeat(32) } });
      await assert.rejects(verifyPeerCertificate(other.tls.certDer, rp.current, { expectedRole: "worker", cache: new EvidenceCache() }), /policy\.model/);

      const owner = new WalletService(client, keyPairFromSeedHex(chain.boot.seeds.owner), "devnet");
      await owner.sendBatch([{ to: chain.boot.root, value: toNano("0.05"), body: setImageBody(ImageKind.WORKER, Buffer.from(simDefaultImageDigest(), "hex"), false) }]);
      await rp.refresh();
      assert.deepEqual(rp.current.measurements.worker, []);
      await assert.rejects(
        verifyPeerCertificate(worker.tls.certDer, rp.current, { expectedRole: "worker", cache: new EvidenceCache() }),
        (e: Error) => /policy\.measurement/.test(e.message) && e.message.includes(simDefaultImageDigest()),
      );
    } finally {
      rp.stop();
    }
  } finally {
    await chain.close();
  }
});
