// OCSP (RFC 6960) for the NVIDIA GPU certificate chain, as stapled evidence: the worker asks NVIDIA's OCSP service
// when it collects its GPU evidence (online) and carries the signed answers in its GPU bundle; verifiers check those
// answers offline (signature by the issuer or by a responder certificate that chains to the same pinned root, the
// CertID, status good, thisUpdate <= now <= nextUpdate). A worker that cannot reach the service carries none, and
// the policy decides (requireGpuOcsp).
//   OCSPRequest  ::= SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF SEQUENCE { reqCert CertID } } }
//   CertID       ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//                               issuerKeyHash OCTET STRING, serialNumber INTEGER }        (SHA-384 here)
//   OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT SEQUENCE { OID, OCTET STRING } }
//   BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature BIT STRING, certs [0] OPTIONAL }
//   ResponseData ::= SEQUENCE { version [0] OPTIONAL, responderID [1]|[2], producedAt, responses SEQUENCE OF
//                               SingleResponse, responseExtensions [1] OPTIONAL }
//   SingleResponse ::= SEQUENCE { certID, certStatus good [0] | revoked [1] | unknown [2], thisUpdate,
//                                 nextUpdate [0] EXPLICIT OPTIONAL, singleExtensions [1] OPTIONAL }
import { X509Certificate, createHash, verify as cryptoVerify } from "node:crypto";
import { EvidenceFormatError, errorText } from "./errors.js";
import { TAG, children, content, decodeOid, decodeTime, expectTag, intHex, oid, parseDer, raw, seq, tlv, uint, type DerNode } from "./der.js";
import { certFields, subjectCN, verifyChainToRoot } from "./x509.js";

export const NVIDIA_OCSP_URL = "http://ocsp.ndis.nvidia.com/";
const OID_SHA384 = "2.16.840.1.101.3.4.2.2";
const OID_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1";
const HASH_BY_SIG_OID: Record<string, string> = { "1.2.840.10045.4.3.2": "sha256", "1.2.840.10045.4.3.3": "sha384", "1.2.840.10045.4.3.4": "sha512" };
const FETCH_TIMEOUT_MS = 10_000;

/** The subjectPublicKey BIT STRING contents (without the unused-bits byte): what issuerKeyHash covers. */
function publicKeyBits(cert: X509Certificate): Buffer {
  const spki = children(parseDer(certFields(Buffer.from(cert.raw)).spki, "SPKI"));
  return content(expectTag(spki[1], TAG.BIT_STRING, "subjectPublicKey")).subarray(1);
}

function certId(cert: X509Certificate, issuer: X509Certificate): { nameHash: Buffer; keyHash: Buffer; serial: string } {
  const sha = (b: Buffer) => createHash("sha384").update(b).digest();
  return { nameHash: sha(certFields(Buffer.from(issuer.raw)).subjectRaw), keyHash: sha(publicKeyBits(issuer)), serial: certFields(Buffer.from(cert.raw)).serialHex };
}

/** DER OCSPRequest for `cert` issued by `issuer` (CertID with SHA-384). */
export function ocspRequest(cert: X509Certificate, issuer: X509Certificate): Buffer {
  const id = certId(cert, issuer);
  const certIdDer = seq(seq(oid(OID_SHA384), tlv(TAG.NULL, Buffer.alloc(0))), tlv(TAG.OCTET_STRING, id.nameHash), tlv(TAG.OCTET_STRING, id.keyHash), uint(Buffer.from(id.serial.length % 2 ? `0${id.serial}` : id.serial, "hex")));
  return seq(seq(seq(seq(certIdDer))));
}

export interface OcspSingle {
  hashOid: string;
  nameHash: Buffer;
  keyHash: Buffer;
  serial: string;
  status: "good" | "revoked" | "unknown";
  thisUpdate: Date;
  nextUpdate?: Date;
}

export interface OcspResponse {
  tbs: Buffer;
  sigHash: string;
  signature: Buffer;
  certs: Buffer[];
  responses: OcspSingle[];
}

const STATUS_BY_TAG: Record<number, OcspSingle["status"]> = { 0x80: "good", 0xa1: "revoked", 0x81: "revoked", 0x82: "unknown" };

export function parseOcspResponse(der: Buffer): OcspResponse {
  const top = children(expectTag(parseDer(der, "OCSP response"), TAG.SEQUENCE, "OCSP response"));
  const status = content(expectTag(top[0], 0x0a, "OCSP responseStatus"));
  if (status.length !== 1 || status[0] !== 0) throw new EvidenceFormatError(`OCSP responder answered status ${status[0] ?? "?"} (0 = successful, 1 malformed request, 2 internal error, 3 try later, 5 signature required, 6 unauthorized)`);
  const [rb] = children(expectTag(top[1], 0xa0, "OCSP responseBytes"));
  const [typ, octets] = children(expectTag(rb, TAG.SEQUENCE, "OCSP responseBytes"));
  if (decodeOid(expectTag(typ, TAG.OID, "OCSP response type")) !== OID_OCSP_BASIC) throw new EvidenceFormatError("OCSP response is not a basic OCSP response");
  const basic = children(expectTag(parseDer(content(expectTag(octets, TAG.OCTET_STRING, "OCSP response")), "BasicOCSPResponse"), TAG.SEQUENCE, "BasicOCSPResponse"));
  const tbsNode = expectTag(basic[0], TAG.SEQUENCE, "OCSP ResponseData");
  const sigAlg = decodeOid(expectTag(children(expectTag(basic[1], TAG.SEQUENCE, "OCSP signatureAlgorithm"))[0], TAG.OID, "OCSP signature algorithm"));
  const sigHash = HASH_BY_SIG_OID[sigAlg];
  if (!sigHash) throw new EvidenceFormatError(`OCSP response signature algorithm ${sigAlg} is not supported (ECDSA only)`);
  const sigBits = content(expectTag(basic[2], TAG.BIT_STRING, "OCSP signature"));
  const certs = basic[3] ? children(expectTag(children(expectTag(basic[3], 0xa0, "OCSP certs"))[0], TAG.SEQUENCE, "OCSP certs")).map((n) => Buffer.from(raw(n))) : [];
  const rd = children(tbsNode, "OCSP ResponseData");
  let i = rd[0]?.tag === 0xa0 ? 1 : 0; // version
  i++; // responderID
  i++; // producedAt
  const responses = children(expectTag(rd[i], TAG.SEQUENCE, "OCSP responses")).map((n: DerNode): OcspSingle => {
    const f = children(expectTag(n, TAG.SEQUENCE, "OCSP SingleResponse"));
    const idf = children(expectTag(f[0], TAG.SEQUENCE, "OCSP CertID"));
    const st = STATUS_BY_TAG[f[1]?.tag ?? -1];
    if (!st) throw new EvidenceFormatError("OCSP SingleResponse: unknown certStatus");
    let nextUpdate: Date | undefined;
    if (f[3]?.tag === 0xa0) nextUpdate = decodeTime(children(f[3])[0], "OCSP nextUpdate");
    return {
      hashOid: decodeOid(expectTag(children(expectTag(idf[0], TAG.SEQUENCE, "OCSP hashAlgorithm"))[0], TAG.OID, "OCSP hash")),
      nameHash: Buffer.from(content(expectTag(idf[1], TAG.OCTET_STRING, "issuerNameHash"))),
      keyHash: Buffer.from(content(expectTag(idf[2], TAG.OCTET_STRING, "issuerKeyHash"))),
      serial: intHex(expectTag(idf[3], TAG.INTEGER, "serialNumber")),
      status: st,
      thisUpdate: decodeTime(f[2], "OCSP thisUpdate"),
      nextUpdate,
    };
  });
  return { tbs: Buffer.from(raw(tbsNode)), sigHash, signature: Buffer.from(sigBits.subarray(1)), certs, responses };
}

/**
 * Checks a stapled OCSP answer for `cert` (issued by `issuer`): signed by the issuer, or by a responder certificate
 * it carries that chains to `rootPem`; the CertID is this certificate's; status good; fresh at `now`. Throws an
 * Error saying what failed.
 */
export function checkOcsp(der: Buffer, cert: X509Certificate, issuer: X509Certificate, rootPem: string, now: Date): void {
  const r = parseOcspResponse(der);
  const name = `OCSP answer for "${subjectCN(cert)}"`;
  const signers = [issuer, ...r.certs.map((c) => {
    const chain = verifyChainToRoot([c, Buffer.from(issuer.raw)], rootPem, now, "OCSP responder");
    return chain[0];
  })];
  if (!signers.some((k) => cryptoVerify(r.sigHash, r.tbs, k.publicKey, r.signature))) throw new Error(`${name} is not signed by the issuer or by a responder it certifies`);
  const id = certId(cert, issuer);
  const single = r.responses.find((s) => s.hashOid === OID_SHA384 && s.nameHash.equals(id.nameHash) && s.keyHash.equals(id.keyHash) && s.serial === id.serial);
  if (!single) throw new Error(`${name} does not cover this certificate (serial ${id.serial})`);
  if (single.status !== "good") throw new Error(`${name}: the certificate is ${single.status.toUpperCase()} (serial ${id.serial})`);
  if (now < single.thisUpdate) throw new Error(`${name} is from the future (thisUpdate ${single.thisUpdate.toISOString()})`);
  if (!single.nextUpdate || now > single.nextUpdate) throw new Error(`${name} is stale (nextUpdate ${single.nextUpdate?.toISOString() ?? "absent"}); the worker must collect fresh GPU evidence`);
}

/** Asks an OCSP service about every certificate of `chain` below its last one. Throws when it cannot answer. */
export async function fetchOcspStaples(chain: X509Certificate[], url = NVIDIA_OCSP_URL, fetchImpl: typeof fetch = fetch): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i + 1 < chain.length; i++) {
    let res: Response;
    try {
      res = await fetchImpl(url, { method: "POST", headers: { "content-type": "application/ocsp-request" }, body: new Uint8Array(ocspRequest(chain[i], chain[i + 1])), signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    } catch (e) {
      throw new Error(`OCSP service unreachable at ${url} (${errorText((e as { cause?: unknown }).cause ?? e)})`);
    }
    if (!res.ok) throw new Error(`OCSP service at ${url} answered HTTP ${res.status}`);
    out.push(Buffer.from(await res.arrayBuffer()));
  }
  return out;
}
