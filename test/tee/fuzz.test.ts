// Parsers of untrusted bytes must survive random and mutated input: they either succeed or throw a clear
// EvidenceFormatError (verifiers return verified=false); no RangeError/TypeError, no crash, no hang.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EvidenceFormatError, AttestationError } from "../../src/tee/errors.js";
import { parseTdxQuote } from "../../src/tee/tdx/quote.js";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { parseSnpReport, verifySnpReport } from "../../src/tee/sevsnp.js";
import { parseNvidiaEvidence } from "../../src/tee/nvidia.js";
import { parseSimEvidence, createSimEvidence } from "../../src/tee/sim.js";
import { decodeClaims } from "../../src/tee/claims.js";
import { decodeEvidenceBundle } from "../../src/tee/evidence.js";
import { parseCrl } from "../../src/tee/crl.js";
import { certFields } from "../../src/tee/x509.js";
import { parseCollateral } from "../../src/tee/tdx/collateral.js";
import { detectEvidence } from "../../src/tee/detect.js";
import { verifyPeerCertificate, EvidenceCache } from "../../src/tee/ratls.js";
import { DEV_POLICY } from "../../src/tee/policy.js";
import { createNodeIdentity } from "../../src/tee/identity.js";
import { TDX_V4, SNP_AT, nvEvidence, snpReport, snpVcek, vec, vecText } from "./helpers.js";

const RUNS = 300;

function onlyFormatErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof EvidenceFormatError)) throw new Error(`unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`);
    assert.ok(e.message.length > 10);
  }
}

/** Mutations of a real sample: flips, truncations, random overwrites of lengths. */
function mutated(sample: Buffer) {
  return fc.oneof(
    fc.tuple(fc.nat(sample.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const b = Buffer.from(sample);
      b[i] ^= x;
      return b;
    }),
    fc.nat(sample.length).map((n) => sample.subarray(0, n)),
    fc.tuple(fc.nat(sample.length - 4), fc.integer({ min: 0, max: 0xffffffff })).map(([i, v]) => {
      const b = Buffer.from(sample);
      b.writeUInt32LE(v, i);
      return b;
    }),
    fc.uint8Array({ maxLength: 2048 }).map((u) => Buffer.from(u)),
  );
}

describe("fuzzed evidence never crashes the parsers", () => {
  it("TDX quote parser", () => {
    fc.assert(fc.property(mutated(vec(TDX_V4.quote).subarray(0, 4936)), (b) => onlyFormatErrors(() => parseTdxQuote(b))), { numRuns: RUNS * 3 });
  });
  it("TDX verifier returns a verdict for mutated quotes", () => {
    const col = vecText(TDX_V4.collateral);
    fc.assert(
      fc.property(mutated(vec(TDX_V4.quote)), (b) => {
        const v = verifyTdxQuote(b, { collateral: col, now: TDX_V4.at });
        assert.equal(typeof v.verified, "boolean");
        if (v.verified) {
          // Only unsigned, unused bytes (padding, the untrusted copy of the root in the PEM) may change.
          const a = parseTdxQuote(vec(TDX_V4.quote));
          const q = v.quote!;
          for (const k of ["signedRegion", "signature", "attestationKey", "qeReportSignature", "qeAuthData"] as const) assert.ok(q[k].equals(a[k]), k);
          assert.ok(q.qeReport.raw.equals(a.qeReport.raw));
        }
      }),
      { numRuns: 60 },
    );
  });
  it("SEV-SNP report parser and verifier", () => {
    fc.assert(fc.property(mutated(snpReport()), (b) => onlyFormatErrors(() => parseSnpReport(b))), { numRuns: RUNS });
    fc.assert(
      fc.property(mutated(snpVcek()), (vcek) => {
        const v = verifySnpReport(snpReport(), vcek, { now: SNP_AT });
        assert.equal(typeof v.verified, "boolean");
      }),
      { numRuns: 60 },
    );
  });
  it("NVIDIA SPDM parser", () => {
    fc.assert(fc.property(mutated(nvEvidence()), (b) => onlyFormatErrors(() => parseNvidiaEvidence(b))), { numRuns: RUNS });
  });
  it("sim evidence, claims and evidence bundles", () => {
    const sim = createSimEvidence({ reportData: Buffer.alloc(64) });
    fc.assert(fc.property(mutated(sim), (b) => onlyFormatErrors(() => parseSimEvidence(b))), { numRuns: RUNS });
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (s) => onlyFormatErrors(() => decodeClaims(Buffer.from(s)))), { numRuns: RUNS });
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (s) => onlyFormatErrors(() => decodeEvidenceBundle(Buffer.from(s)))), { numRuns: RUNS });
    fc.assert(fc.property(fc.oneof(fc.string(), fc.json()), (s) => onlyFormatErrors(() => parseCollateral(s))), { numRuns: RUNS });
  });
  it("DER walkers: certificates and CRLs", () => {
    const crl = Buffer.from(JSON.parse(vecText(TDX_V4.collateral)).pck_crl, "hex");
    fc.assert(fc.property(mutated(crl), (b) => onlyFormatErrors(() => parseCrl(b))), { numRuns: RUNS });
    fc.assert(fc.property(mutated(snpVcek()), (b) => onlyFormatErrors(() => certFields(b))), { numRuns: RUNS });
  });
  it("evidence kind detection", () => {
    fc.assert(fc.property(mutated(vec(TDX_V4.quote)), (b) => onlyFormatErrors(() => detectEvidence(b))), { numRuns: RUNS });
  });
  it("RA-TLS verification of mutated certificates only ever refuses with AttestationError", async () => {
    const id = await createNodeIdentity({ role: "worker" });
    const cache = new EvidenceCache();
    await fc.assert(
      fc.asyncProperty(mutated(id.tls.certDer), async (b) => {
        try {
          await verifyPeerCertificate(b, DEV_POLICY, { cache });
        } catch (e) {
          if (!(e instanceof AttestationError)) throw new Error(`unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`);
          return;
        }
        assert.ok(b.equals(id.tls.certDer), "only the genuine certificate may pass");
      }),
      { numRuns: 150 },
    );
  });
});
