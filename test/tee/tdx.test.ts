import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { parseTdxQuote } from "../../src/tee/tdx/quote.js";
import { evaluateTdxTcb, tcbRank } from "../../src/tee/tdx/tcb.js";
import { TcbInfoSchema, type TcbInfo } from "../../src/tee/tdx/collateral.js";
import { X509Certificate } from "node:crypto";
import { parseCrl } from "../../src/tee/crl.js";
import { certFields, splitPem } from "../../src/tee/x509.js";
import { findRevoked } from "../../src/tee/tdx/verify.js";
import { AMD_MILAN_ARK_PEM } from "../../src/tee/roots/index.js";
import { TDX_V4, TDX_V5_GO, TDX_V5_OUTDATED, flip, vec, vecText } from "./helpers.js";

const expected = JSON.parse(vecText("tdx/expected.json")) as Record<string, any>;

function run(v: { quote: string; collateral: string; at: Date }, mutate?: (q: Buffer) => Buffer, opts: Parameters<typeof verifyTdxQuote>[1] = {}) {
  const q = vec(v.quote);
  return verifyTdxQuote(mutate ? mutate(q) : q, { collateral: vecText(v.collateral), now: v.at, ...opts });
}

describe("TDX vectors give the verdicts and fields in expected.json", () => {
  for (const [file, v] of [[TDX_V4.quote, TDX_V4], [TDX_V5_OUTDATED.quote, TDX_V5_OUTDATED], [TDX_V5_GO.quote, TDX_V5_GO]] as const) {
    it(file, () => {
      const e = expected[file];
      assert.equal(e.collateral, v.collateral);
      assert.equal(new Date(e.evaluatedAt).getTime(), v.at.getTime());
      const r = run(v);
      const q = r.quote!;
      assert.equal(vec(file).length, e.fileLen);
      assert.equal(q.version, e.quoteVersion);
      assert.equal(q.bodyType, e.bodyType);
      assert.equal(q.quoteLen, e.quoteLen);
      assert.equal(r.details.teeTcbSvn, e.teeTcbSvn);
      assert.equal(r.details.teeTcbSvn2, e.teeTcbSvn2);
      assert.equal(r.measurements.mrseam, e.mrSeam);
      assert.equal(r.details.tdAttributes, e.tdAttributes);
      assert.equal(r.details.xfam, e.xfam);
      assert.equal(r.measurements.mrtd, e.mrTd);
      assert.equal(r.measurements.mrconfigid, e.mrConfigId);
      assert.equal(r.measurements.mrowner, e.mrOwner);
      assert.equal(r.measurements.mrownerconfig, e.mrOwnerConfig);
      assert.deepEqual(r.measurements.rtmr, e.rtmr);
      assert.equal(r.reportData, e.reportData);
      assert.equal(r.details.fmspc, e.fmspc);
      assert.equal(r.details.pceSvn, e.pceSvn);
      assert.equal((r.details.pckTcbComponents as number[]).join(","), e.pckTcbComps);
      assert.deepEqual(r.details.qe, e.qe);
      assert.deepEqual(r.details.tdAttributeFlags, e.tdAttrFlags);
      for (const [k, want] of Object.entries(e.checks)) assert.equal(r.checks[k], want, `check ${k}`);
      assert.equal(r.details.qeTcbStatus, e.qeTcbStatus);
      assert.ok(String(e.platformTcbStatus).startsWith(r.tcb!.status), `${r.tcb!.status} vs ${e.platformTcbStatus}`);
      assert.deepEqual(r.advisoryIds, e.advisoryIDs);
      const accept = e.platformTcbStatus === "UpToDate";
      assert.equal(r.verified, accept);
      assert.equal(r.status, accept ? "UpToDate" : "TCB_NOT_SUPPORTED");
      if (!accept) assert.match(r.errors.join(" "), /SGX components/);
    });
  }
});

/** Rebuilds a quote with another PCK chain (sizes recomputed; signatures untouched). */
function withPckChain(quote: Buffer, pem: string): Buffer {
  const q = parseTdxQuote(quote);
  const signedEnd = q.signedRegion.length;
  const sigStart = signedEnd + 4;
  const certDataStart = sigStart + 128 + 6;
  const innerHeader = certDataStart + 384 + 64 + 2 + q.qeAuthData.length;
  const newPem = Buffer.from(pem, "latin1");
  const inner = Buffer.alloc(6);
  inner.writeUInt16LE(5, 0);
  inner.writeUInt32LE(newPem.length, 2);
  const certData = Buffer.concat([quote.subarray(certDataStart, innerHeader), inner, newPem]);
  const certHdr = Buffer.alloc(6);
  certHdr.writeUInt16LE(6, 0);
  certHdr.writeUInt32LE(certData.length, 2);
  const sigData = Buffer.concat([quote.subarray(sigStart, sigStart + 128), certHdr, certData]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(sigData.length);
  return Buffer.concat([q.signedRegion, len, sigData]);
}

describe("TDX negatives fail with the right reason", () => {
  it("a flipped byte in the header or TD report breaks the quote signature only", () => {
    for (const off of [20, 48 + 136, 568 + 10]) {
      const r = run(TDX_V4, (q) => flip(q, off));
      assert.equal(r.verified, false);
      assert.equal(r.checks.quoteSigByAttKey, false, `offset ${off}`);
      assert.equal(r.checks.qeReportSigByPck, true);
      assert.equal(r.status, "Invalid");
      assert.match(r.errors.join(";"), /quote signature does not verify/);
    }
  });
  it("a flipped byte in the QE report breaks the QE report signature", () => {
    const qeReportStart = 632 + 4 + 128 + 6; // signed region, sig data length, sig + key, cert type + size
    const r = run(TDX_V4, (q) => flip(q, qeReportStart + 100));
    assert.equal(r.verified, false);
    assert.equal(r.checks.qeReportSigByPck, false);
    assert.equal(r.checks.quoteSigByAttKey, true);
  });
  it("a flipped QE report-data byte breaks the attestation-key binding", () => {
    const qeReportStart = 632 + 4 + 128 + 6;
    const r = run(TDX_V4, (q) => flip(q, qeReportStart + 320 + 5));
    assert.equal(r.checks.qeReportDataBindsAttKey, false);
  });
  it("collateral evaluated after nextUpdate is expired", () => {
    const r = run({ ...TDX_V4, at: new Date("2025-08-01T00:00:00Z") });
    assert.equal(r.verified, false);
    assert.equal(r.checks.collateralFresh, false);
    assert.match(r.errors.join(";"), /TCB info expired at .*fetch fresh collateral/);
    assert.equal(r.checks.quoteSigByAttKey, true);
  });
  it("a wrong pinned root fails the PCK chain", () => {
    const r = run(TDX_V4, undefined, { rootPem: AMD_MILAN_ARK_PEM });
    assert.equal(r.verified, false);
    assert.equal(r.checks.pckChainToIntelRoot, false);
    assert.match(r.errors[0], /not the pinned root/);
  });
  it("altered TCB info text fails its signature", () => {
    const col = JSON.parse(vecText(TDX_V4.collateral));
    col.tcb_info = col.tcb_info.replace('"tcbEvaluationDataNumber":17', '"tcbEvaluationDataNumber":99');
    const r = verifyTdxQuote(vec(TDX_V4.quote), { collateral: col, now: TDX_V4.at });
    assert.equal(r.checks.tcbInfoSig, false);
    assert.equal(r.verified, false);
  });
  it("collateral of another FMSPC is refused (swapped collateral)", () => {
    const r = verifyTdxQuote(vec(TDX_V4.quote), { collateral: vecText(TDX_V5_OUTDATED.collateral), now: TDX_V5_OUTDATED.at });
    assert.equal(r.verified, false);
    assert.equal(r.checks.fmspcMatches, false);
    assert.match(r.errors.join(";"), /FMSPC 90C06F000000.*FMSPC B0C06F000000/);
  });
  it("a swapped PCK CRL issuer chain is refused", () => {
    const col = JSON.parse(vecText(TDX_V4.collateral));
    col.pck_crl_issuer_chain = col.tcb_info_issuer_chain;
    const r = verifyTdxQuote(vec(TDX_V4.quote), { collateral: col, now: TDX_V4.at });
    assert.equal(r.checks.pck_crlSig, false);
    assert.equal(r.verified, false);
  });
  it("a swapped PCK certificate chain (another platform's) is refused", () => {
    const a = vec(TDX_V4.quote);
    const other = parseTdxQuote(vec(TDX_V5_GO.quote)).pckChainPem;
    // Evaluated without collateral at a time when both PCK chains are valid.
    const r = verifyTdxQuote(withPckChain(a, other), { now: TDX_V5_GO.at });
    assert.equal(r.checks.pckChainToIntelRoot, true, "the other chain is genuine");
    assert.equal(r.checks.qeReportSigByPck, false, "but its key did not sign this QE report");
    assert.equal(r.verified, false);
    // Sanity: rebuilding with the quote's own chain keeps it valid.
    assert.equal(verifyTdxQuote(withPckChain(a, parseTdxQuote(a).pckChainPem), { collateral: vecText(TDX_V4.collateral), now: TDX_V4.at }).verified, true);
    assert.equal(verifyTdxQuote(withPckChain(a, parseTdxQuote(a).pckChainPem), { now: TDX_V5_GO.at }).checks.qeReportSigByPck, true);
  });
  it("revoked serials in a CRL are found (serial normalisation)", () => {
    const col = JSON.parse(vecText(TDX_V4.collateral));
    const crl = parseCrl(Buffer.from(col.pck_crl, "hex"));
    const leaf = splitPem(parseTdxQuote(vec(TDX_V4.quote)).pckChainPem)[0];
    assert.ok(crl.revoked.size > 0, "the real PCK CRL lists revoked serials");
    assert.equal(findRevoked(crl, [new X509Certificate(leaf)]), undefined);
    crl.revoked.add(certFields(leaf).serialHex);
    assert.match(findRevoked(crl, [new X509Certificate(leaf)]) ?? "", /serial [0-9a-f]+\) is revoked/);
  });
  it("no collateral: signatures verify but the verdict is not verified", () => {
    const r = verifyTdxQuote(vec(TDX_V4.quote), { now: TDX_V4.at });
    assert.equal(r.verified, false);
    assert.equal(r.status, "NoCollateral");
    assert.equal(r.checks.quoteSigByAttKey, true);
    assert.match(r.errors[0], /no collateral/);
  });
  it("debug TDs are refused unless allowed", () => {
    // Setting the DEBUG bit breaks the signature too, so check the attribute rule on its own.
    const r = run(TDX_V4, (q) => flip(q, 48 + 120, 0x01));
    assert.equal(r.checks.debugOff, false);
    assert.match(r.errors.join(";"), /DEBUG attribute/);
    const allowed = run(TDX_V4, (q) => flip(q, 48 + 120, 0x01), { allowDebug: true });
    assert.equal(allowed.checks.debugOff, undefined);
  });
  it("minimum TCB evaluation data number rejects stale collateral", () => {
    const r = run(TDX_V4, undefined, { minTcbEvaluationDataNumber: 18 });
    assert.equal(r.checks.tcbEvaluationDataNumber, false);
    assert.equal(run(TDX_V4, undefined, { minTcbEvaluationDataNumber: 17 }).verified, true);
  });
  it("parser rejects wrong versions, SGX quotes and truncation", () => {
    const q = vec(TDX_V4.quote);
    const v3 = Buffer.from(q);
    v3.writeUInt16LE(3, 0);
    assert.throws(() => parseTdxQuote(v3), /version 3 is not supported/);
    const sgx = Buffer.from(q);
    sgx.writeUInt32LE(0, 4);
    assert.throws(() => parseTdxQuote(sgx), /SGX enclave quotes are not accepted/);
    assert.throws(() => parseTdxQuote(q.subarray(0, 700)), /truncated|remain/);
  });
  it("bytes after the signature data are ignored with a warning, or refused when asked", () => {
    // go-tdx-guest's own test quote carries 39 such bytes; no signature covers them (dcap-qvl ignores them too).
    const junk = Buffer.concat([vec(TDX_V4.quote), Buffer.alloc(39, 0xab)]);
    const t = parseTdxQuote(junk).trailing;
    assert.ok(t.nonZero && t.length >= 39);
    const col = vecText(TDX_V4.collateral);
    const ok = verifyTdxQuote(junk, { collateral: col, now: TDX_V4.at });
    assert.equal(ok.verified, true, ok.errors.join("; "));
    assert.match(ok.warnings?.join() ?? "", /non-zero byte\(s\) after its signature data/);
    const strict = verifyTdxQuote(junk, { collateral: col, now: TDX_V4.at, refuseTrailingBytes: true });
    assert.equal(strict.verified, false);
    assert.equal(strict.checks.noTrailingBytes, false);
    assert.equal(verifyTdxQuote(vec(TDX_V4.quote), { collateral: col, now: TDX_V4.at }).warnings, undefined);
  });
});

describe("pinned Intel root", () => {
  it("is the Intel SGX Root CA with the root key id the original Cocoon pins", async () => {
    const { INTEL_SGX_ROOT_CA_PEM } = await import("../../src/tee/roots/index.js");
    const { createHash } = await import("node:crypto");
    const root = new X509Certificate(INTEL_SGX_ROOT_CA_PEM);
    assert.equal(root.fingerprint256, "44:A0:19:6B:2B:99:F8:89:B8:E1:49:E9:5B:80:7A:35:0E:74:24:96:43:99:E8:85:A7:CB:B8:CC:FA:B6:74:D3");
    assert.ok(root.raw.equals(vec("roots/intel_sgx_root_ca.der")));
    const jwk = root.publicKey.export({ format: "jwk" });
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x as string, "base64url"), Buffer.from(jwk.y as string, "base64url")]);
    assert.equal(createHash("sha384").update(point).digest("hex"), "46e403bd34f05a3f2817ab9badcaacc7ffc98e0f261008cd30dae936cace18d5dcf58eef31463613de1570d516200993");
  });
});

describe("Intel TCB level matching", () => {
  const base = JSON.parse(JSON.parse(vecText(TDX_V5_OUTDATED.collateral)).tcb_info);
  const info: TcbInfo = TcbInfoSchema.parse(base);
  const pckOk = { tcbComponents: [9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0], pceSvn: 13 };
  const svn = (s: string) => Buffer.from(s.padEnd(32, "0"), "hex");
  const qeOk = { status: "UpToDate", advisoryIds: [] };
  it("up to date platform and module", () => {
    assert.equal(evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("070103"), qe: qeOk }).status, "UpToDate");
  });
  it("older TDX module makes the platform OutOfDate with the module's advisories", () => {
    const r = evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("040103"), qe: qeOk });
    assert.equal(r.status, "OutOfDate");
    assert.equal(r.moduleStatus, "OutOfDate");
    assert.ok(r.advisoryIds.includes("INTEL-SA-01036"));
  });
  it("unknown module major version is a mismatch; module SVN below every level is not supported", () => {
    assert.equal(evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("070903"), qe: qeOk }).status, "TDX_MODULE_MISMATCH");
    assert.equal(evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("010103"), qe: qeOk }).status, "TCB_NOT_SUPPORTED");
  });
  it("older late microcode SVN matches an OutOfDate level", () => {
    const r = evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("070102"), qe: qeOk });
    assert.equal(r.status, "OutOfDate");
    assert.ok(r.advisoryIds.length > 0);
  });
  it("QE OutOfDate or Revoked converges into the platform status", () => {
    assert.equal(evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("070103"), qe: { status: "OutOfDate", advisoryIds: ["X"] } }).status, "OutOfDate");
    assert.equal(evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("070103"), qe: { status: "Revoked", advisoryIds: [] } }).status, "Revoked");
  });
  it("TD relaunch advised when TEE_TCB_SVN_2 is already current", () => {
    const r = evaluateTdxTcb({ tcbInfo: info, pck: pckOk, teeTcbSvn: svn("040103"), teeTcbSvn2: svn("070103"), qe: qeOk });
    assert.equal(r.status, "TDRelaunchAdvised");
  });
  it("status ranking orders policy minimums", () => {
    assert.ok(tcbRank("UpToDate") < tcbRank("SWHardeningNeeded"));
    assert.ok(tcbRank("OutOfDate") < tcbRank("Revoked"));
    assert.ok(tcbRank("nonsense") > tcbRank("TDX_MODULE_MISMATCH"));
  });
});
