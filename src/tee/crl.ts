// X.509 certificate revocation lists (RFC 5280 5.1), parsed with the DER walker and verified with node:crypto.
// CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
// TBSCertList ::= SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier, issuer Name,
//   thisUpdate Time, nextUpdate Time OPTIONAL, revokedCertificates SEQUENCE OF SEQUENCE { userCertificate
//   INTEGER, revocationDate Time, crlEntryExtensions OPTIONAL } OPTIONAL, crlExtensions [0] OPTIONAL }
import { X509Certificate, constants, verify as cryptoVerify } from "node:crypto";
import { EvidenceFormatError } from "./errors.js";
import { TAG, children, content, decodeOid, decodeSmallInt, decodeTime, expectTag, intHex, parseDer, raw, type DerNode } from "./der.js";
import { certFields, subjectCN } from "./x509.js";

const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const HASH_BY_SIG_OID: Record<string, string> = { [OID_ECDSA_SHA256]: "sha256", [OID_ECDSA_SHA384]: "sha384" };
/** RSASSA-PSS (RFC 4055): AMD's ARK signs its CRL with it (SHA-384, MGF1-SHA-384, 48-byte salt). */
const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";
const OID_MGF1 = "1.2.840.113549.1.1.8";
const HASH_BY_OID: Record<string, string> = { "2.16.840.1.101.3.4.2.1": "sha256", "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512" };

export interface Crl {
  tbs: Buffer;
  sigAlgOid: string;
  /** The signature algorithm's parameters (RSASSA-PSS-params for RSA-PSS), if any. */
  sigAlgParams?: DerNode;
  signature: Buffer;
  issuerRaw: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** Revoked serial numbers, lowercase hex without leading zeros. */
  revoked: Set<string>;
}

export function parseCrl(der: Buffer, what = "CRL"): Crl {
  const top = children(expectTag(parseDer(der, what), TAG.SEQUENCE, what), what);
  const tbsNode = expectTag(top[0], TAG.SEQUENCE, `${what} tbsCertList`);
  const sigAlg = children(expectTag(top[1], TAG.SEQUENCE, `${what} signatureAlgorithm`), what);
  const sigBits = content(expectTag(top[2], TAG.BIT_STRING, `${what} signature`));
  if (sigBits.length < 1 || sigBits[0] !== 0) throw new EvidenceFormatError(`${what}: signature BIT STRING has unused bits`);
  const f = children(tbsNode, what);
  let i = 0;
  if (f[i]?.tag === TAG.INTEGER) i++;
  i++; // inner signature algorithm
  const issuer = expectTag(f[i++], TAG.SEQUENCE, `${what} issuer`);
  const thisUpdate = decodeTime(f[i++], `${what} thisUpdate`);
  let nextUpdate: Date | undefined;
  if (f[i] && (f[i].tag === TAG.UTC_TIME || f[i].tag === TAG.GENERALIZED_TIME)) nextUpdate = decodeTime(f[i++], `${what} nextUpdate`);
  const revoked = new Set<string>();
  if (f[i]?.tag === TAG.SEQUENCE) {
    for (const entry of children(f[i], what)) {
      const [serial] = children(expectTag(entry, TAG.SEQUENCE, `${what} revoked entry`), what);
      revoked.add(intHex(expectTag(serial, TAG.INTEGER, `${what} revoked serial`)));
    }
  }
  return {
    tbs: raw(tbsNode),
    sigAlgOid: decodeOid(expectTag(sigAlg[0], TAG.OID, `${what} signature algorithm`)),
    sigAlgParams: sigAlg[1],
    signature: sigBits.subarray(1),
    issuerRaw: raw(issuer),
    thisUpdate,
    nextUpdate,
    revoked,
  };
}

/**
 * RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] (default SHA-1), maskGenAlgorithm [1] (default MGF1-SHA-1),
 * saltLength [2] INTEGER (default 20), trailerField [3] (must be 1) }. Only SHA-2 with MGF1 over the same hash is
 * accepted (what AMD uses); anything else is refused by name.
 */
export function pssParams(params: DerNode | undefined, what: string): { hash: string; saltLength: number } {
  if (!params || params.tag !== TAG.SEQUENCE) throw new Error(`${what}: RSASSA-PSS signature without parameters`);
  let hash: string | undefined;
  let mgfHash: string | undefined;
  let saltLength = 20;
  const hashOf = (alg: DerNode, name: string): string => {
    const id = decodeOid(expectTag(children(expectTag(alg, TAG.SEQUENCE, name), name)[0], TAG.OID, name));
    const h = HASH_BY_OID[id];
    if (!h) throw new Error(`${what}: RSASSA-PSS ${name} ${id} is not SHA-256/384/512`);
    return h;
  };
  for (const f of children(params, what)) {
    const [inner] = children(f, what);
    if (f.tag === 0xa0) hash = hashOf(inner, "hash algorithm");
    else if (f.tag === 0xa1) {
      const [mgfOid, mgfParams] = children(expectTag(inner, TAG.SEQUENCE, `${what} mask generation`), what);
      const id = decodeOid(expectTag(mgfOid, TAG.OID, `${what} mask generation`));
      if (id !== OID_MGF1) throw new Error(`${what}: RSASSA-PSS mask generation ${id} is not MGF1`);
      mgfHash = hashOf(mgfParams, "MGF1 hash");
    } else if (f.tag === 0xa2) saltLength = decodeSmallInt(inner, `${what} salt length`);
    else if (f.tag === 0xa3) {
      if (decodeSmallInt(inner, `${what} trailer field`) !== 1) throw new Error(`${what}: RSASSA-PSS trailer field is not 1`);
    } else throw new Error(`${what}: unknown RSASSA-PSS parameter tag 0x${f.tag.toString(16)}`);
  }
  if (!hash) throw new Error(`${what}: RSASSA-PSS with the SHA-1 default hash is not accepted`);
  if (mgfHash !== hash) throw new Error(`${what}: RSASSA-PSS MGF1 hash ${mgfHash ?? "sha1 (default)"} differs from the signature hash ${hash}`);
  return { hash, saltLength };
}

/** Checks that `issuer` signed the CRL (names and ECDSA or RSASSA-PSS signature). Throws a descriptive Error otherwise. */
export function verifyCrlSignature(crl: Crl, issuer: X509Certificate, what: string): void {
  const issuerSubject = certFields(Buffer.from(issuer.raw), "CRL issuer").subjectRaw;
  if (!issuerSubject.equals(crl.issuerRaw)) throw new Error(`${what}: issuer name does not match "${subjectCN(issuer)}"`);
  let ok: boolean;
  if (crl.sigAlgOid === OID_RSASSA_PSS) {
    const { hash, saltLength } = pssParams(crl.sigAlgParams, what);
    if (issuer.publicKey.asymmetricKeyType !== "rsa" && issuer.publicKey.asymmetricKeyType !== "rsa-pss") throw new Error(`${what}: RSASSA-PSS signature but "${subjectCN(issuer)}" has no RSA key`);
    ok = cryptoVerify(hash, crl.tbs, { key: issuer.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, crl.signature);
  } else {
    const hash = HASH_BY_SIG_OID[crl.sigAlgOid];
    if (!hash) throw new Error(`${what}: unsupported signature algorithm ${crl.sigAlgOid}`);
    ok = cryptoVerify(hash, crl.tbs, issuer.publicKey, crl.signature);
  }
  if (!ok) throw new Error(`${what}: signature by "${subjectCN(issuer)}" does not verify`);
}

/** Throws if `now` is outside [thisUpdate, nextUpdate]. */
export function checkCrlFresh(crl: Crl, now: Date, what: string): void {
  if (now < crl.thisUpdate) throw new Error(`${what} is not yet valid at ${now.toISOString()} (thisUpdate ${crl.thisUpdate.toISOString()})`);
  if (!crl.nextUpdate) throw new Error(`${what} has no nextUpdate, so its freshness cannot be judged`);
  if (now > crl.nextUpdate) {
    throw new Error(`${what} expired at ${crl.nextUpdate.toISOString()} (evaluated at ${now.toISOString()}); fetch fresh collateral`);
  }
}
