// Builds the short-lived self-signed RA-TLS certificate (X.509 v3, Ed25519) and reads it back.
// Extensions: basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical), EKU serverAuth +
// clientAuth, SAN dNSName, and two critical private extensions:
//   RATLS_EVIDENCE_OID  evidence bundle (evidence.ts)
//   RATLS_CLAIMS_OID    canonical claims (claims.ts); the evidence's REPORTDATA = SHA-512(domain || these bytes)
// The arc 1.3.6.1.4.1.12345 is the placeholder enterprise number also used by the original Cocoon; our .100.x
// leaves hold a different format, so the two can never be confused.
import { randomBytes, sign, type KeyObject } from "node:crypto";
import { bitString, bool, explicit, octets, oid, seq, set, time, tlv, uint, utf8 } from "./der.js";
import { EvidenceFormatError } from "./errors.js";
import { certFields, toPem } from "./x509.js";

export const RATLS_EVIDENCE_OID = "1.3.6.1.4.1.12345.100.1";
export const RATLS_CLAIMS_OID = "1.3.6.1.4.1.12345.100.2";
const OID_ED25519 = "1.3.101.112";
const OID_CN = "2.5.4.3";
export const OID_BASIC_CONSTRAINTS = "2.5.29.19";
export const OID_KEY_USAGE = "2.5.29.15";
const OID_EKU = "2.5.29.37";
const OID_SAN = "2.5.29.17";
const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
/** keyUsage BIT STRING: 7 unused bits, digitalSignature (bit 0) set. */
const KEY_USAGE_DIGITAL_SIGNATURE = Buffer.from([0x03, 0x02, 0x07, 0x80]);
const SERIAL_BYTES = 16;
const SAN_DNS_TAG = 0x82;
/** Certificates start this long before issuance to tolerate clock skew between nodes. */
export const CERT_BACKDATE_SECONDS = 60;

function ext(id: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
}

export function buildRaTlsCertificate(opts: {
  privateKey: KeyObject;
  publicKeySpki: Buffer;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  evidence: Buffer;
  claims: Buffer;
  /** Additional extensions (tests use this to show that unknown critical extensions are refused). */
  extraExtensions?: { oid: string; critical: boolean; value: Buffer }[];
}): { der: Buffer; pem: string } {
  const name = seq(set(seq(oid(OID_CN), utf8(opts.commonName))));
  const algo = seq(oid(OID_ED25519));
  const serial = randomBytes(SERIAL_BYTES);
  serial[0] &= 0x7f;
  serial[0] |= 0x01;
  const extensions = seq(
    ext(OID_BASIC_CONSTRAINTS, true, seq()),
    ext(OID_KEY_USAGE, true, KEY_USAGE_DIGITAL_SIGNATURE),
    ext(OID_EKU, false, seq(oid(OID_SERVER_AUTH), oid(OID_CLIENT_AUTH))),
    ext(OID_SAN, false, seq(tlv(SAN_DNS_TAG, Buffer.from(opts.commonName.replace(/[^a-z0-9.-]/gi, "-"), "latin1")))),
    ext(RATLS_EVIDENCE_OID, true, opts.evidence),
    ext(RATLS_CLAIMS_OID, true, opts.claims),
    ...(opts.extraExtensions ?? []).map((e) => ext(e.oid, e.critical, e.value)),
  );
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(serial),
    algo,
    name,
    seq(time(opts.notBefore), time(opts.notAfter)),
    name,
    opts.publicKeySpki,
    explicit(3, extensions),
  );
  const signature = sign(null, tbs, opts.privateKey);
  const der = seq(tbs, algo, bitString(signature));
  return { der, pem: toPem(der) };
}

/** Extensions this code understands; any other critical extension makes a peer certificate unacceptable. */
export const KNOWN_CRITICAL_EXTENSIONS: ReadonlySet<string> = new Set([OID_BASIC_CONSTRAINTS, OID_KEY_USAGE, RATLS_EVIDENCE_OID, RATLS_CLAIMS_OID]);

export function readRaTlsExtensions(der: Buffer) {
  const f = certFields(der, "RA-TLS certificate");
  const evidence = f.extensions.get(RATLS_EVIDENCE_OID);
  const claims = f.extensions.get(RATLS_CLAIMS_OID);
  if (!evidence || !claims) {
    throw new EvidenceFormatError("certificate carries no Cocoon RA-TLS evidence/claims extensions (1.3.6.1.4.1.12345.100.1/.2): the peer is not an attested node");
  }
  return { fields: f, evidence: evidence.value, claims: claims.value };
}
