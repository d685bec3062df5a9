// X.509 certificate revocation lists (RFC 5280 5.1), parsed with the DER walker and verified with node:crypto.
// CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING }
// TBSCertList ::= SEQUENCE { version INTEGER OPTIONAL, signature AlgorithmIdentifier, issuer Name,
//   thisUpdate Time, nextUpdate Time OPTIONAL, revokedCertificates SEQUENCE OF SEQUENCE { userCertificate
//   INTEGER, revocationDate Time, crlEntryExtensions OPTIONAL } OPTIONAL, crlExtensions [0] OPTIONAL }
import { X509Certificate, verify as cryptoVerify } from "node:crypto";
import { EvidenceFormatError } from "./errors.js";
import { TAG, children, content, decodeOid, decodeTime, expectTag, intHex, parseDer, raw } from "./der.js";
import { certFields, subjectCN } from "./x509.js";

const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384 = "1.2.840.10045.4.3.3";
const HASH_BY_SIG_OID: Record<string, string> = { [OID_ECDSA_SHA256]: "sha256", [OID_ECDSA_SHA384]: "sha384" };

export interface Crl {
  tbs: Buffer;
  sigAlgOid: string;
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
    signature: sigBits.subarray(1),
    issuerRaw: raw(issuer),
    thisUpdate,
    nextUpdate,
    revoked,
  };
}

/** Checks that `issuer` signed the CRL (names and ECDSA signature). Throws a descriptive Error otherwise. */
export function verifyCrlSignature(crl: Crl, issuer: X509Certificate, what: string): void {
  const hash = HASH_BY_SIG_OID[crl.sigAlgOid];
  if (!hash) throw new Error(`${what}: unsupported signature algorithm ${crl.sigAlgOid}`);
  const issuerSubject = certFields(Buffer.from(issuer.raw), "CRL issuer").subjectRaw;
  if (!issuerSubject.equals(crl.issuerRaw)) throw new Error(`${what}: issuer name does not match "${subjectCN(issuer)}"`);
  if (!cryptoVerify(hash, crl.tbs, issuer.publicKey, crl.signature)) {
    throw new Error(`${what}: signature by "${subjectCN(issuer)}" does not verify`);
  }
}

/** Throws if `now` is outside [thisUpdate, nextUpdate]. */
export function checkCrlFresh(crl: Crl, now: Date, what: string): void {
  if (now < crl.thisUpdate) throw new Error(`${what} is not yet valid at ${now.toISOString()} (thisUpdate ${crl.thisUpdate.toISOString()})`);
  if (!crl.nextUpdate) throw new Error(`${what} has no nextUpdate, so its freshness cannot be judged`);
  if (now > crl.nextUpdate) {
    throw new Error(`${what} expired at ${crl.nextUpdate.toISOString()} (evaluated at ${now.toISOString()}); fetch fresh collateral`);
  }
}
