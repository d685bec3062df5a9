// A revoked PCK certificate (or a revoked Intel CA below the root) fails the whole TDX verdict.
//
// The real quote's Intel chain is re-signed by a test root that only this test trusts (verifyTdxQuote's `rootPem`
// option, the test-only override of the pinned Intel root): the root and the PCK Platform CA keep their names and
// extensions but get test keys; the PCK leaf and the TCB signing certificate keep their TBS bytes (so the QE
// report, TCB info and QE identity signatures still verify) and are re-signed by the test keys. With CRLs signed
// by those keys, the quote verifies when nothing is revoked and fails when a CRL lists the leaf or the CA.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { parseTdxQuote } from "../../src/tee/tdx/quote.js";
import { certFields, splitPem, toPem } from "../../src/tee/x509.js";
import { TAG, bitString, children, explicit, oid, parseDer, raw, seq, time, tlv, uint } from "../../src/tee/der.js";
import { TDX_V4, vec, vecText } from "./helpers.js";

const ECDSA_SHA256 = seq(oid("1.2.840.10045.4.3.2"));

/** Rebuilds a quote with another PCK chain (sizes recomputed; signatures untouched). Same as in tdx.test.ts. */
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

const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
const spkiDer = (k: KeyObject): Buffer => k.export({ type: "spki", format: "der" });
const signed = (tbs: Buffer, key: KeyObject): Buffer => seq(tbs, ECDSA_SHA256, bitString(sign("sha256", tbs, key)));

/** The certificate's TBS with its subjectPublicKeyInfo replaced (names, serial, extensions untouched). */
function tbsWithKey(der: Buffer, spki: Buffer | undefined): Buffer {
  const tbs = children(parseDer(der))[0];
  const parts = children(tbs).map(raw);
  if (!spki) return raw(tbs);
  const at = tbs.buf[tbs.contentStart] === 0xa0 ? 6 : 5; // [0] version, serial, sigAlg, issuer, validity, subject, SPKI
  parts[at] = spki;
  return seq(...parts);
}

/** A CRL (RFC 5280 5.1) by `issuerDer`'s subject, signed with `key`, listing `serials` (hex). */
function crl(issuerDer: Buffer, key: KeyObject, serials: string[], now: Date): Buffer {
  const issuer = certFields(issuerDer).subjectRaw;
  const entries = serials.map((s) => seq(uint(Buffer.from(s.length % 2 ? `0${s}` : s, "hex")), time(now)));
  const tbs = seq(
    tlv(TAG.INTEGER, Buffer.from([1])),
    ECDSA_SHA256,
    issuer,
    time(new Date(now.getTime() - 86_400_000)),
    time(new Date(now.getTime() + 86_400_000)),
    ...(entries.length ? [seq(...entries)] : []),
  );
  return signed(tbs, key);
}

/** The real vector, its Intel chain re-signed by test keys; CRLs revoke the given serials. */
function resigned(revokeByRoot: string[], revokeByCa: string[]) {
  const at = TDX_V4.at;
  const quote = vec(TDX_V4.quote);
  const col = JSON.parse(vecText(TDX_V4.collateral)) as Record<string, string>;
  const [leafDer, caDer, rootDer] = splitPem(parseTdxQuote(quote).pckChainPem);
  const [tcbSignerDer] = splitPem(col.tcb_info_issuer_chain);
  const root = p256();
  const ca = p256();
  const root2 = signed(tbsWithKey(rootDer, spkiDer(root.publicKey)), root.privateKey);
  const ca2 = signed(tbsWithKey(caDer, spkiDer(ca.publicKey)), root.privateKey);
  const leaf2 = signed(tbsWithKey(leafDer, undefined), ca.privateKey);
  const tcbSigner2 = signed(tbsWithKey(tcbSignerDer, undefined), root.privateKey);
  const pem = (...ders: Buffer[]) => ders.map((d) => toPem(d)).join("");
  const collateral = {
    ...col,
    tcb_info_issuer_chain: pem(tcbSigner2, root2),
    qe_identity_issuer_chain: pem(tcbSigner2, root2),
    pck_crl_issuer_chain: pem(ca2, root2),
    root_ca_crl: crl(root2, root.privateKey, revokeByRoot, at).toString("hex"),
    pck_crl: crl(ca2, ca.privateKey, revokeByCa, at).toString("hex"),
  };
  const serial = (d: Buffer) => certFields(d).serialHex;
  return {
    verify: (trustTestRoot = true) =>
      verifyTdxQuote(withPckChain(quote, pem(leaf2, ca2, root2)), { collateral: JSON.stringify(collateral), now: at, rootPem: trustTestRoot ? pem(root2) : undefined }),
    leafSerial: serial(leafDer),
    caSerial: serial(caDer),
    tcbSignerSerial: serial(tcbSignerDer),
  };
}

describe("TDX revocation fails the verdict", () => {
  const clean = resigned([], []);

  it("control: the re-signed chain with empty CRLs verifies (only revocation differs below)", () => {
    const r = clean.verify();
    assert.deepEqual(r.errors, []);
    assert.equal(r.checks.noneRevoked, true);
    assert.equal(r.checks.pck_crlSig, true);
    assert.equal(r.checks.root_ca_crlSig, true);
    assert.equal(r.verified, true);
    assert.equal(r.status, "UpToDate");
  });

  it("the pinned Intel root does not trust the re-signed chain", () => {
    const r = clean.verify(false);
    assert.equal(r.checks.pckChainToIntelRoot, false);
    assert.equal(r.verified, false);
  });

  it("a PCK CRL that lists the PCK leaf's serial fails the quote", () => {
    const r = resigned([], ["0badc0de", clean.leafSerial]).verify();
    assert.equal(r.checks.pck_crlSig, true, "the CRL itself is genuine");
    assert.equal(r.checks.noneRevoked, false);
    assert.equal(r.verified, false);
    assert.equal(r.status, "Invalid");
    assert.match(r.errors.join(" "), /Intel SGX PCK Certificate.*is revoked/);
  });

  it("a root CA CRL that lists the PCK Platform CA's serial fails the quote", () => {
    const r = resigned([clean.caSerial], []).verify();
    assert.equal(r.checks.root_ca_crlSig, true);
    assert.equal(r.checks.noneRevoked, false);
    assert.equal(r.verified, false);
    assert.match(r.errors.join(" "), /Intel SGX PCK Platform CA.*is revoked/);
  });

  it("a root CA CRL that lists the TCB signing certificate's serial fails the quote", () => {
    const r = resigned([clean.tcbSignerSerial], []).verify();
    assert.equal(r.checks.noneRevoked, false);
    assert.equal(r.verified, false);
    assert.match(r.errors.join(" "), /Intel SGX TCB Signing.*is revoked/);
  });

  it("a serial the CRLs list that is not in the chain changes nothing", () => {
    const r = resigned(["0102"], ["0badc0de"]).verify();
    assert.equal(r.verified, true);
  });
});
