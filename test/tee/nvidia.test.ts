import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadReferenceMeasurements, parseNvidiaEvidence, verifyNvidiaEvidence } from "../../src/tee/nvidia.js";
import { INTEL_SGX_ROOT_CA_PEM } from "../../src/tee/roots/index.js";
import { splitPem, toPem } from "../../src/tee/x509.js";
import { NV_AT, NV_NONCE, flip, nvChain, nvEvidence } from "./helpers.js";

describe("NVIDIA Hopper evidence (nvtrust)", () => {
  it("verifies: chain to the pinned NVIDIA root, signature, nonce, 64 blocks", () => {
    const v = verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, expectedNonce: NV_NONCE });
    assert.equal(v.verified, true, v.errors.join("; "));
    assert.equal(v.reportData, NV_NONCE);
    assert.equal(Object.keys(v.measurements).length, 64);
    assert.equal((v.details as any).driverVersion, "550.90.07");
    assert.deepEqual(v.checks, { certChainToNvidiaRoot: true, measurementSignature: true, nonceMatches: true });
    assert.match((v.details as any).notes.join(" "), /no stapled OCSP answers: revocation status was not checked \(offline mode\)/);
  });
  it("a flipped measurement byte breaks the signature", () => {
    const v = verifyNvidiaEvidence(flip(nvEvidence(), 37 + 8 + 10), nvChain(), { now: NV_AT });
    assert.equal(v.verified, false);
    assert.equal(v.checks.measurementSignature, false);
  });
  it("a different expected nonce is refused (replay)", () => {
    const v = verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, expectedNonce: "00".repeat(32) });
    assert.equal(v.checks.nonceMatches, false);
    assert.match(v.errors.join(";"), /replayed or stale/);
  });
  it("a wrong root, a truncated chain and a swapped leaf fail", () => {
    assert.equal(verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, rootPem: INTEL_SGX_ROOT_CA_PEM }).checks.certChainToNvidiaRoot, false);
    const certs = splitPem(nvChain());
    const noLeaf = certs.slice(1).map((c) => toPem(c)).join("");
    const v = verifyNvidiaEvidence(nvEvidence(), noLeaf, { now: NV_AT });
    assert.equal(v.checks.certChainToNvidiaRoot, true);
    assert.equal(v.checks.measurementSignature, false, "the BROM key did not sign the measurements");
  });
  it("compares against reference measurements (JSON files on disk); unsigned RIM XML is refused", () => {
    const base = verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT });
    const dir = mkdtempSync(join(tmpdir(), "rim-"));
    writeFileSync(join(dir, "a.json"), JSON.stringify({ measurements: { "1": base.measurements["1"], "2": [base.measurements["2"], "abcd"] } }));
    const ref = loadReferenceMeasurements(dir);
    assert.deepEqual([...ref.keys()].sort(), [1, 2]);
    assert.equal(verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, reference: ref }).checks.referenceMeasurements, true);
    writeFileSync(join(dir, "c.json"), JSON.stringify({ measurements: { "5": "00".repeat(48) } }));
    const bad = verifyNvidiaEvidence(nvEvidence(), nvChain(), { now: NV_AT, reference: loadReferenceMeasurements(dir) });
    assert.equal(bad.verified, false);
    assert.match(bad.errors.join(";"), /index 5 = .* not in the reference values/);
    const rim = `<?xml version="1.0"?><SoftwareIdentity><Payload>
      <Resource type="Measurement" index="2" active="True" Hash0="${base.measurements["2"]}" size="48"/></Payload></SoftwareIdentity>`;
    writeFileSync(join(dir, "b.xml"), rim);
    assert.throws(() => loadReferenceMeasurements(dir), /b\.xml: expected one enveloped ds:Signature .*unsigned RIM cannot be trusted.*JSON file/);
    rmSync(dir, { recursive: true, force: true });
  });
  it("parser refuses malformed transcripts", () => {
    assert.throws(() => parseNvidiaEvidence(Buffer.from("1234", "hex")), /SPDM 1.1 GET_MEASUREMENTS/);
    assert.throws(() => parseNvidiaEvidence(nvEvidence().subarray(0, 500)), /truncated|remain/);
    assert.throws(() => parseNvidiaEvidence(Buffer.concat([nvEvidence(), Buffer.from([0])])), /unexpected bytes after the signature/);
  });
});
