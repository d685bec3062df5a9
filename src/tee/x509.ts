// X.509 helpers on node:crypto plus the DER walker: PEM splitting, the fields node:crypto does not expose
// (extensions, raw names, validity as dates, serials) and chain verification to a root pinned by fingerprint.
import { X509Certificate, createHash } from "node:crypto";
import { EvidenceFormatError } from "./errors.js";
import { TAG, children, content, decodeOid, decodeTime, expectTag, intHex, parseDer, raw, type DerNode } from "./der.js";

const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----/g;

/** Splits concatenated PEM certificates into DER buffers. Trailing NULs and junk between blocks are ignored. */
export function splitPem(text: string | Buffer): Buffer[] {
  const s = typeof text === "string" ? text : text.toString("latin1");
  const out: Buffer[] = [];
  for (const m of s.matchAll(PEM_RE)) out.push(Buffer.from(m[1].replace(/\s+/g, ""), "base64"));
  return out;
}

export function toPem(der: Buffer, label = "CERTIFICATE"): string {
  const b64 = der.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface CertExtension {
  critical: boolean;
  value: Buffer;
}

export interface CertFields {
  der: Buffer;
  tbs: Buffer;
  serialHex: string;
  issuerRaw: Buffer;
  subjectRaw: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  extensions: Map<string, CertExtension>;
}

/** Parses the TBSCertificate fields of a DER certificate (RFC 5280 4.1). */
export function certFields(der: Buffer, what = "certificate"): CertFields {
  const cert = expectTag(parseDer(der, what), TAG.SEQUENCE, what);
  const [tbsNode] = children(cert, what);
  const tbs = children(expectTag(tbsNode, TAG.SEQUENCE, `${what} TBSCertificate`), what);
  let i = 0;
  if (tbs[0]?.tag === 0xa0) i++; // [0] version
  const serial = expectTag(tbs[i++], TAG.INTEGER, `${what} serial`);
  i++; // signature algorithm
  const issuer = expectTag(tbs[i++], TAG.SEQUENCE, `${what} issuer`);
  const validity = children(expectTag(tbs[i++], TAG.SEQUENCE, `${what} validity`), what);
  const subject = expectTag(tbs[i++], TAG.SEQUENCE, `${what} subject`);
  const spki = expectTag(tbs[i++], TAG.SEQUENCE, `${what} subjectPublicKeyInfo`);
  const extensions = new Map<string, CertExtension>();
  for (; i < tbs.length; i++) {
    if (tbs[i].tag !== 0xa3) continue; // [1]/[2] unique ids are skipped
    const [list] = children(tbs[i], what);
    for (const ext of children(expectTag(list, TAG.SEQUENCE, `${what} extensions`), what)) {
      const parts = children(expectTag(ext, TAG.SEQUENCE, `${what} extension`), what);
      const id = decodeOid(expectTag(parts[0], TAG.OID, `${what} extension id`));
      let critical = false;
      let v = parts[1];
      if (v?.tag === TAG.BOOLEAN) {
        critical = content(v)[0] !== 0;
        v = parts[2];
      }
      if (extensions.has(id)) throw new EvidenceFormatError(`${what}: duplicate extension ${id}`);
      extensions.set(id, { critical, value: content(expectTag(v, TAG.OCTET_STRING, `${what} extension ${id} value`)) });
    }
  }
  return {
    der,
    tbs: raw(tbsNode),
    serialHex: intHex(serial),
    issuerRaw: raw(issuer),
    subjectRaw: raw(subject),
    notBefore: decodeTime(validity[0], `${what} notBefore`),
    notAfter: decodeTime(validity[1], `${what} notAfter`),
    spki: raw(spki),
    extensions,
  };
}

export function parseCert(der: Buffer, what: string): X509Certificate {
  try {
    return new X509Certificate(der);
  } catch (e) {
    throw new EvidenceFormatError(`${what}: not a valid X.509 certificate (${(e as Error).message})`);
  }
}

/** SHA-256 fingerprint of DER, uppercase hex with colons (as X509Certificate.fingerprint256 prints it). */
export function fingerprint(der: Buffer): string {
  return createHash("sha256").update(der).digest("hex").toUpperCase().match(/../g)!.join(":");
}

export function subjectCN(cert: X509Certificate): string {
  return /CN=([^\n]+)/.exec(cert.subject)?.[1] ?? cert.subject;
}

/**
 * Verifies `chain` (leaf first) up to the pinned root. The chain may end with the root itself (it must then be
 * byte-identical to the pinned one) or stop just below it. Checks, per link: issuer/subject names, signature,
 * CA flag on issuers, and validity at `now`. Throws an Error that names the certificate and the failure.
 * Returns the certificate objects from leaf to root (root included).
 */
export function verifyChainToRoot(chainDer: Buffer[], rootPem: string, now: Date, label: string): X509Certificate[] {
  if (chainDer.length === 0) throw new Error(`${label}: certificate chain is empty`);
  const root = new X509Certificate(rootPem);
  const certs = chainDer.map((d, i) => parseCert(d, `${label} certificate #${i}`));
  const last = certs[certs.length - 1];
  if (last.fingerprint256 === root.fingerprint256) certs.pop();
  else if (last.checkIssued(last) && last.verify(last.publicKey)) {
    throw new Error(
      `${label}: chain ends in a self-signed certificate "${subjectCN(last)}" (${last.fingerprint256}) that is not the pinned root "${subjectCN(root)}" (${root.fingerprint256})`,
    );
  }
  const full = [...certs, root];
  for (let i = 0; i < full.length; i++) {
    const c = full[i];
    const issuer = full[Math.min(i + 1, full.length - 1)];
    const name = `${label} certificate "${subjectCN(c)}"`;
    if (!c.checkIssued(issuer)) throw new Error(`${name} was not issued by "${subjectCN(issuer)}"`);
    if (!c.verify(issuer.publicKey)) throw new Error(`${name}: signature by "${subjectCN(issuer)}" does not verify`);
    if (i > 0 && !c.ca) throw new Error(`${name} signs other certificates but is not a CA`);
    const f = certFields(Buffer.from(c.raw), name);
    if (now < f.notBefore || now > f.notAfter) {
      throw new Error(`${name} is not valid at ${now.toISOString()} (valid ${f.notBefore.toISOString()} .. ${f.notAfter.toISOString()})`);
    }
  }
  return full;
}

/** Lookup of a child in a DER SEQUENCE-of-{OID, value} structure (used by the Intel and AMD extensions). */
export function oidValueMap(node: DerNode, what: string): Map<string, DerNode> {
  const m = new Map<string, DerNode>();
  for (const entry of children(expectTag(node, TAG.SEQUENCE, what), what)) {
    const [k, v] = children(expectTag(entry, TAG.SEQUENCE, what), what);
    if (!v) throw new EvidenceFormatError(`${what}: entry without a value`);
    m.set(decodeOid(expectTag(k, TAG.OID, what)), v);
  }
  return m;
}
