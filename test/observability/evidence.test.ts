// A node's own attestation verdict for its dashboard: verified by the same verifier peers use, per identity.
import { test } from "node:test";
import assert from "node:assert/strict";
import { nodeSecurity } from "../../src/cli/security.js";
import { withOwnEvidence, type OwnEvidence } from "../../src/observability/evidence.js";
import { silentLogger } from "../../src/util/log.js";

const settle = async (f: () => Record<string, unknown>) => {
  for (let i = 0; i < 100; i++) {
    const a = f().attestation as { evidence?: OwnEvidence };
    if (a.evidence) return a;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("no verdict");
};

test("a sim worker's own evidence: measurements and image digest, and still flagged insecure; re-judged after rotation", async () => {
  const sec = await nodeSecurity("worker", { nodeId: "w1" }, silentLogger, { name: "m", digest: "ab".repeat(32) });
  const status = withOwnEvidence(sec, "worker");
  const a = (await settle(status)) as { insecure: boolean; evidence: OwnEvidence };
  assert.equal(a.insecure, true);
  assert.equal(a.evidence.verdict, "INSECURE-SIM");
  assert.match(a.evidence.imageDigest ?? "", /^[0-9a-f]{64}$/);
  assert.match(String(a.evidence.measurements?.mrtd), /^[0-9a-f]{96}$/);
  const before = sec.node.tls.certDer;
  await sec.rotate();
  assert.notDeepEqual(sec.node.tls.certDer, before);
  status(); // sees the new certificate and judges it
  const again = (await settle(status)) as { evidence: OwnEvidence };
  assert.equal(again.evidence.imageDigest, a.evidence.imageDigest, "same image, new keys");
});
