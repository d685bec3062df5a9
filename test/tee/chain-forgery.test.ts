// A certificate whose issuer *name* is right but whose signature was made by another key is refused: by
// verifyChainToRoot, and through the chain step of the TDX (PCK), SEV-SNP (VCEK) and NVIDIA verifiers.
//
// The forgeries start from the real vectors: the forged certificate keeps the genuine TBS bytes (names, serial,
// extensions, key ids, validity), so only the signature (and, where the attacker needs it, the subject key) differs.
// Where the forged certificate carries the attacker's key, the attacker also signs the evidence with it, so the
// chain signature is the only check that stands between the forgery and a verified verdict.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { constants, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { verifyChainToRoot, splitPem, toPem } from "../../src/tee/x509.js";
import { verifyTdxQuote } from "../../src/tee/tdx/verify.js";
import { parseTdxQuote } from "../../src/tee/tdx/quote.js";
import { verifySnpReport } from "../../src/tee/sevsnp.js";
import { verifyNvidiaEvidence } from "../../src/tee/nvidia.js";
import { INTEL_SGX_ROOT_CA_PEM, NVIDIA_DEVICE_IDENTITY_CA_PEM, AMD_MILAN_ARK_PEM, AMD_MILAN_ASK_PEM } from "../../src/tee/roots/index.js";
import { bitString, children, decodeOid, explicit, octets, parseDer, raw, seq } from "../../src/tee/der.js";
import { NV_AT, NV_NONCE, SNP_AT, TDX_V4, nvChain, nvEvidence, snpReport, snpVcek, vec, vecText } from "./helpers.js";

const spkiDer = (k: KeyObject): Buffer => k.export({ type: "spki", format: "der" });

/** The certificate's TBS, with its subjectPublicKeyInfo replaced when `spki` is given, and its outer algorithm. */
function parts(der: Buffer, spki?: Buffer): { tbs: Buffer; alg: Buffer } {
  const [tbsNode, algNode] = children(parseDer(der));
  if (!spki) return { tbs: raw(tbsNode), alg: raw(algNode) };
  const fields = children(tbsNode).map(raw);
  fields[tbsNode.buf[tbsNode.contentStart] === 0xa0 ? 6 : 5] = spki;
  return { tbs: seq(...fields), alg: raw(algNode) };
}

/** Re-signs `der` (optionally with a new subject key) with `key`: an ECDSA signature over the TBS bytes. */
function forgeEc(der: Buffer, hash: "sha256" | "sha384", key: KeyObject, spki?: Buffer): Buffer {
  const { tbs, alg } = parts(der, spki);
  return seq(tbs, alg, bitString(sign(hash, tbs, key)));
}

/** Rebuilds a quote with another PCK chain (sizes recomputed; signatures untouched). Same as in tdx.test.ts. */
function withPckChain(quote: Buffer, chainPem: string): Buffer {
  const q = parseTdxQuote(quote);
  const sigStart = q.signedRegion.length + 4;
  const certDataStart = sigStart + 128 + 6;
  const innerHeader = certDataStart + 384 + 64 + 2 + q.qeAuthData.length;
  const newPem = Buffer.from(chainPem, "latin1");
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

/** The TBS with basicConstraints replaced by "not a CA" (an empty SEQUENCE: cA defaults to FALSE). */
function tbsNotCa(tbs: Buffer): Buffer {
  const node = parseDer(tbs);
  return seq(...children(node).map((f) => {
    if (f.tag !== 0xa3) return raw(f);
    const exts = children(children(f)[0]!).map((ext) => {
      const [id] = children(ext);
      return decodeOid(id!) === "2.5.29.19" ? seq(raw(id!), octets(seq())) : raw(ext);
    });
    return explicit(3, seq(...exts));
  }));
}

const pem = (...ders: Buffer[]) => ders.map((d) => toPem(d)).join("");

describe("verifyChainToRoot refuses a same-name issuer that did not sign", () => {
  const [pckLeaf, pckCa, intelRoot] = splitPem(parseTdxQuote(vec(TDX_V4.quote)).pckChainPem);
  const attacker = generateKeyPairSync("ec", { namedCurve: "P-256" });

  it("control: the genuine PCK chain verifies to the pinned Intel root", () => {
    assert.equal(verifyChainToRoot([pckLeaf, pckCa, intelRoot], INTEL_SGX_ROOT_CA_PEM, TDX_V4.at, "PCK").length, 3);
  });

  it("a PCK leaf re-signed by another key (same issuer name, same key ids) is refused", () => {
    const forged = forgeEc(pckLeaf, "sha256", attacker.privateKey);
    assert.throws(
      () => verifyChainToRoot([forged, pckCa, intelRoot], INTEL_SGX_ROOT_CA_PEM, TDX_V4.at, "PCK"),
      /"Intel SGX PCK Certificate": signature by "Intel SGX PCK Platform CA" does not verify/,
    );
  });

  it("a PCK leaf carrying the attacker's key, signed by it, is refused", () => {
    const forged = forgeEc(pckLeaf, "sha256", attacker.privateKey, spkiDer(attacker.publicKey));
    assert.throws(() => verifyChainToRoot([forged, pckCa], INTEL_SGX_ROOT_CA_PEM, TDX_V4.at, "PCK"), /signature by "Intel SGX PCK Platform CA" does not verify/);
  });

  it("a forged PCK Platform CA (Intel's name and key ids, the attacker's key) below the real root is refused", () => {
    const ca = forgeEc(pckCa, "sha256", attacker.privateKey, spkiDer(attacker.publicKey));
    const leaf = forgeEc(pckLeaf, "sha256", attacker.privateKey, spkiDer(attacker.publicKey));
    assert.throws(
      () => verifyChainToRoot([leaf, ca, intelRoot], INTEL_SGX_ROOT_CA_PEM, TDX_V4.at, "PCK"),
      /"Intel SGX PCK Platform CA": signature by "Intel SGX Root CA" does not verify/,
    );
  });

  it("a chain is refused outside its validity period", () => {
    for (const at of [new Date("2017-01-01T00:00:00Z"), new Date("2060-01-01T00:00:00Z")]) {
      assert.throws(() => verifyChainToRoot([pckLeaf, pckCa, intelRoot], INTEL_SGX_ROOT_CA_PEM, at, "PCK"), /is not valid at/);
    }
  });

  it("an issuer whose certificate is not a CA (basicConstraints cA=false) is refused, though its signature verifies", () => {
    const rootKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const caKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const testRoot = forgeEc(intelRoot, "sha256", rootKey.privateKey, spkiDer(rootKey.publicKey));
    const caTbs = parts(pckCa, spkiDer(caKey.publicKey)).tbs;
    const sign256 = (tbs: Buffer, key: KeyObject) => seq(tbs, parts(pckCa).alg, bitString(sign("sha256", tbs, key)));
    const leaf = forgeEc(pckLeaf, "sha256", caKey.privateKey);
    // Control: the same chain with the CA flag intact verifies to the test root.
    assert.equal(verifyChainToRoot([leaf, sign256(caTbs, rootKey.privateKey)], pem(testRoot), TDX_V4.at, "PCK").length, 3);
    const notCa = sign256(tbsNotCa(caTbs), rootKey.privateKey);
    assert.throws(() => verifyChainToRoot([leaf, notCa], pem(testRoot), TDX_V4.at, "PCK"), /"Intel SGX PCK Platform CA" signs other certificates but is not a CA/);
  });

  it("a forged intermediate in the NVIDIA chain is refused", () => {
    const chain = splitPem(nvChain());
    const nvAttacker = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const forged = [...chain];
    forged[2] = forgeEc(chain[2], "sha384", nvAttacker.privateKey, spkiDer(nvAttacker.publicKey));
    forged[1] = forgeEc(chain[1], "sha384", nvAttacker.privateKey);
    assert.throws(() => verifyChainToRoot(forged, NVIDIA_DEVICE_IDENTITY_CA_PEM, NV_AT, "NVIDIA GPU"), /signature by "NVIDIA GH100 Identity" does not verify/);
  });
});

describe("the verifiers' chain steps refuse a forged issuer signature", () => {
  it("TDX: a PCK leaf with the attacker's key, which signs the QE report, fails the quote", () => {
    const quote = vec(TDX_V4.quote);
    const q = parseTdxQuote(quote);
    const [leaf, ca, root] = splitPem(q.pckChainPem);
    const attacker = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const forgedLeaf = forgeEc(leaf, "sha256", attacker.privateKey, spkiDer(attacker.publicKey));
    // Layout after the signed region: u32 sig len, 64 B quote sig, 64 B attestation key, u16+u32 cert header, QE report (384), QE report sig (64).
    const qeSigAt = q.signedRegion.length + 4 + 128 + 6 + 384;
    const forged = withPckChain(quote, pem(forgedLeaf, ca, root));
    sign("sha256", q.qeReport.raw, { key: attacker.privateKey, dsaEncoding: "ieee-p1363" }).copy(forged, qeSigAt);
    assert.equal(parseTdxQuote(forged).pckChainPem.length > 0, true);

    const r = verifyTdxQuote(forged, { collateral: vecText(TDX_V4.collateral), now: TDX_V4.at });
    assert.equal(r.checks.pckChainToIntelRoot, false);
    assert.equal(r.verified, false);
    assert.match(r.errors.join(" "), /signature by "Intel SGX PCK Platform CA" does not verify/);
    // The genuine quote verifies with the same collateral (so the chain is what fails above).
    assert.equal(verifyTdxQuote(quote, { collateral: vecText(TDX_V4.collateral), now: TDX_V4.at }).verified, true);
  });

  it("SEV-SNP: the genuine VCEK re-signed by another RSA-PSS key (same issuer name) fails the report", () => {
    const rsa = generateKeyPairSync("rsa-pss", { modulusLength: 2048 });
    const { tbs, alg } = parts(snpVcek());
    const sig = sign("sha384", tbs, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 });
    const forged = seq(tbs, alg, bitString(sig));
    assert.throws(() => verifyChainToRoot([forged, ...splitPem(AMD_MILAN_ASK_PEM)], AMD_MILAN_ARK_PEM, SNP_AT, "VCEK"), /signature by "SEV-Milan" does not verify/);
    const r = verifySnpReport(snpReport(), forged, { now: SNP_AT });
    assert.equal(r.checks.vcekSignedByAsk, false);
    assert.equal(r.verified, false);
    assert.equal(verifySnpReport(snpReport(), snpVcek(), { now: SNP_AT }).verified, true);
  });

  it("NVIDIA: a device certificate with the attacker's key, which signs the evidence, fails", () => {
    const chain = splitPem(nvChain());
    const attacker = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const forged = [...chain];
    forged[0] = forgeEc(chain[0], "sha384", attacker.privateKey, spkiDer(attacker.publicKey));
    const ev = nvEvidence();
    const signedPart = ev.subarray(0, ev.length - 96);
    const evidence = Buffer.concat([signedPart, sign("sha384", signedPart, { key: attacker.privateKey, dsaEncoding: "ieee-p1363" })]);
    const r = verifyNvidiaEvidence(evidence, pem(...forged), { now: NV_AT, expectedNonce: NV_NONCE });
    assert.equal(r.checks.certChainToNvidiaRoot, false);
    assert.equal(r.verified, false);
    assert.match(r.errors.join(" "), /"GH100 A01 GSP FMC LF": signature by "GH100 A01 GSP BROM" does not verify/);
  });
});
