import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseSnpReport, snpSignatureP1363, verifySnpReport } from "../../src/tee/sevsnp.js";
import { AMD_GENOA_ARK_PEM, AMD_GENOA_ASK_PEM, AMD_MILAN_ARK_PEM } from "../../src/tee/roots/index.js";
import { SNP_AT, flip, snpReport, snpVcek, vecText, vec } from "./helpers.js";

const expected = JSON.parse(vecText("sev-snp/expected.json"));

describe("SEV-SNP Milan report (virtee)", () => {
  it("verifies and reports every field in expected.json", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT });
    assert.equal(v.verified, true, v.errors.join("; "));
    assert.equal(v.status, "Verified");
    const d = v.details as any;
    const r = v.report!;
    assert.equal(r.version, expected.version);
    assert.equal(r.guestSvn, expected.guestSvn);
    assert.equal(d.policy, expected.policy);
    assert.equal(r.familyId.toString("hex"), expected.familyId);
    assert.equal(r.imageId.toString("hex"), expected.imageId);
    assert.equal(r.vmpl, expected.vmpl);
    assert.equal(r.sigAlgo, expected.sigAlgo);
    assert.deepEqual(d.currentTcb, expected.currentTcb);
    assert.deepEqual(d.reportedTcb, expected.reportedTcb);
    assert.deepEqual(d.committedTcb, expected.committedTcb);
    assert.deepEqual(d.launchTcb, expected.launchTcb);
    assert.equal(`0x${r.platformInfo.toString(16)}`, expected.platformInfo);
    assert.equal(r.flags, expected.flags);
    assert.equal(v.reportData, expected.reportData);
    assert.equal(v.measurements.measurement, expected.measurement);
    // The image digest the root lists: SHA-256(domain ‖ MEASUREMENT ‖ HOST_DATA), computed independently here.
    const want = createHash("sha256").update("cocoon-ts/sev-snp-image/v1\n").update(Buffer.from(expected.measurement, "hex")).update(Buffer.from(expected.hostData, "hex")).digest("hex");
    assert.equal(v.imageDigest, want);
    assert.equal(v.measurements.hostData, expected.hostData);
    assert.equal(r.idKeyDigest.toString("hex"), expected.idKeyDigest);
    assert.equal(r.authorKeyDigest.toString("hex"), expected.authorKeyDigest);
    assert.equal(d.reportId, expected.reportId);
    assert.equal(d.chipId, expected.chipId);
    assert.equal(d.currentVersion, expected.currentVersion);
    assert.deepEqual(d.policyFlags, expected.policyFlags);
    assert.equal(d.signingKey, expected.signingKey);
    assert.equal(d.vcek.subject, expected.vcek.subject);
    for (const k of ["productName", "bl", "tee", "snp", "ucode"]) assert.equal(d.vcek[k], expected.vcek[k], k);
    for (const [k, want] of Object.entries(expected.checks)) assert.equal(v.checks[k], want, k);
  });
  it("fails against the Genoa ARK/ASK", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT, product: "Genoa" });
    assert.equal(v.verified, false);
    assert.equal(v.checks.vcekSignedByAsk, false);
    assert.match(v.errors.join(";"), /not issued by "SEV-Genoa"/);
    const w = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT, arkPem: AMD_GENOA_ARK_PEM, askPem: AMD_GENOA_ASK_PEM });
    assert.equal(w.verified, false);
  });
  it("a Milan ASK under another ARK fails", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT, arkPem: AMD_GENOA_ARK_PEM });
    assert.equal(v.checks.askSignedByArk, false);
    assert.equal(v.verified, false);
  });
  it("flipping byte 0x50 (REPORT_DATA) breaks the signature", () => {
    const v = verifySnpReport(flip(snpReport(), 0x50), snpVcek(), { now: SNP_AT });
    assert.equal(v.verified, false);
    assert.equal(v.checks.reportSigByVcek, false);
    assert.equal(v.checks.vcekSignedByAsk, true);
  });
  it("a changed REPORTED_TCB no longer matches the VCEK", () => {
    const v = verifySnpReport(flip(snpReport(), 0x180, 0x04), snpVcek(), { now: SNP_AT });
    assert.equal(v.checks.vcekTcbEqualsReportedTcb, false);
    assert.match(v.errors.join(";"), /fetch the VCEK for this TCB/);
  });
  it("a changed CHIP_ID no longer matches the VCEK hwID", () => {
    const v = verifySnpReport(flip(snpReport(), 0x1a0), snpVcek(), { now: SNP_AT });
    assert.equal(v.checks.vcekHwIdEqualsChipId, false);
  });
  it("DEBUG policy is refused unless allowed", () => {
    const debug = flip(snpReport(), 0x08 + 2, 0x08); // policy bit 19
    const v = verifySnpReport(debug, snpVcek(), { now: SNP_AT });
    assert.equal(v.checks.debugOff, false);
    assert.equal((v.details as any).policyFlags.debug, true);
  });
  it("an expired VCEK (evaluated after notAfter) fails", () => {
    const v = verifySnpReport(snpReport(), snpVcek(), { now: new Date("2031-01-01T00:00:00Z") });
    assert.equal(v.verified, false);
    assert.match(v.errors.join(";"), /not valid at 2031/);
  });
  it("a VCEK given as PEM works too; a non-certificate fails clearly", () => {
    const pem = `-----BEGIN CERTIFICATE-----\n${snpVcek().toString("base64")}\n-----END CERTIFICATE-----\n`;
    assert.equal(verifySnpReport(snpReport(), Buffer.from(pem), { now: SNP_AT }).verified, true);
    const bad = verifySnpReport(snpReport(), Buffer.from("nope"), { now: SNP_AT });
    assert.equal(bad.verified, false);
    assert.equal(bad.checks.vcekFormat, false);
  });
  it("parser and signature conversion refuse malformed input", () => {
    assert.throws(() => parseSnpReport(Buffer.alloc(100)), /must be 1184 bytes/);
    const v1 = Buffer.from(snpReport());
    v1.writeUInt32LE(1, 0);
    assert.throws(() => parseSnpReport(v1), /version 1 is not supported/);
    const r = Buffer.alloc(72, 0);
    r[60] = 1;
    assert.throws(() => snpSignatureP1363(r, Buffer.alloc(72)), /non-zero bytes above 48/);
    assert.equal(AMD_MILAN_ARK_PEM.includes("BEGIN CERTIFICATE"), true);
    assert.ok(vec("roots/amd/milan_ark.pem").toString().trim() === AMD_MILAN_ARK_PEM.trim(), "embedded root equals the vector file");
  });
});
