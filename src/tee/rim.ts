// NVIDIA reference integrity manifests (RIMs): ISO/IEC 19770-2 SWID tags listing a driver's or VBIOS's golden
// measurements, signed with an enveloped XML signature (XML-DSig) by a certificate chaining to NVIDIA's RIM signing
// root (pinned: src/tee/roots/nvidia_rim_root_ca.pem, "NVIDIA CoRIM signing Root CA").
// What is accepted is what NVIDIA's RIMs use, and anything else is refused by name: one Reference with URI="" and the
// transforms enveloped-signature (+ C14N 1.0/1.1 without comments), digest SHA-256/384/512, canonicalization C14N
// 1.0/1.1 without comments, signature ECDSA-SHA384/SHA256 (r||s, RFC 6931), certificates in KeyInfo/X509Data,
// leaf first.
// RIM measurement indices start at 0; the SPDM measurement block with index i+1 carries RIM index i (as NVIDIA's
// verifier compares them), so `measurements` here is keyed by SPDM block index.
import { createHash, verify as cryptoVerify } from "node:crypto";
import { EvidenceFormatError, errorText } from "./errors.js";
import { NVIDIA_RIM_ROOT_CA_PEM } from "./roots/index.js";
import { canonicalize, localName, namespaceOf, parseXml, type XmlElement } from "./xml-c14n.js";
import { verifyChainToRoot } from "./x509.js";

const DSIG = "http://www.w3.org/2000/09/xmldsig#";
const C14N = new Set(["http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "http://www.w3.org/2006/12/xml-c14n11"]);
const ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const DIGESTS: Record<string, string> = {
  "http://www.w3.org/2001/04/xmlenc#sha256": "sha256",
  "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
  "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
};
const SIGNATURES: Record<string, string> = {
  "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": "sha256",
  "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": "sha384",
};
export const RIM_MAX_BYTES = 1024 * 1024;

export interface RimMeasurement {
  /** SPDM measurement block index (RIM index + 1). */
  index: number;
  size: number;
  /** Allowed values (Hash0, Hash1, ...), lowercase hex. */
  values: string[];
}

export interface Rim {
  /** SWID `name` and Meta colloquialVersion (e.g. GH100, 96.00.5E.00.01 / 545.00). */
  name: string;
  version: string;
  tagId: string;
  /** Active measurements only. */
  measurements: RimMeasurement[];
  signerSubject: string;
}

const kids = (e: XmlElement): XmlElement[] => e.children.filter((c): c is XmlElement => typeof c !== "string");
const text = (e: XmlElement): string => e.children.filter((c): c is string => typeof c === "string").join("");
const attr = (e: XmlElement, name: string): string | undefined => e.attrs.find((a) => a.name === name)?.value;

/** Exactly one child in the XML-DSig namespace with this local name. */
function dsChild(e: XmlElement, local: string, what: string): XmlElement {
  const found = kids(e).filter((c) => localName(c.name) === local && namespaceOf(c) === DSIG);
  if (found.length !== 1) throw new Error(`${what}: expected one ds:${local} in ds:${localName(e.name)}, found ${found.length}`);
  return found[0];
}

function b64(s: string, what: string): Buffer {
  const t = s.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t)) throw new Error(`${what} is not base64`);
  return Buffer.from(t, "base64");
}

/**
 * Verifies a RIM's XML signature and certificate chain at `now` and returns its active measurements. Throws an
 * Error that says which step failed (format, unsupported algorithm, digest, signature, chain).
 */
export function verifyRim(xml: string | Buffer, opts: { now?: Date; what?: string } = {}): Rim {
  const what = opts.what ?? "RIM";
  const now = opts.now ?? new Date();
  const src = typeof xml === "string" ? xml : xml.toString("utf8");
  if (src.length > RIM_MAX_BYTES) throw new EvidenceFormatError(`${what} is ${src.length} bytes; the limit is ${RIM_MAX_BYTES}`);
  const root = parseXml(src, what);
  if (localName(root.name) !== "SoftwareIdentity") throw new EvidenceFormatError(`${what}: the document element is <${root.name}>, not a SWID <SoftwareIdentity>`);
  const sigs = kids(root).filter((c) => localName(c.name) === "Signature" && namespaceOf(c) === DSIG);
  if (sigs.length !== 1) throw new Error(`${what}: expected one enveloped ds:Signature in <SoftwareIdentity>, found ${sigs.length} (an unsigned RIM cannot be trusted)`);
  const sig = sigs[0];
  const signedInfo = dsChild(sig, "SignedInfo", what);
  const c14nAlg = attr(dsChild(signedInfo, "CanonicalizationMethod", what), "Algorithm") ?? "";
  if (!C14N.has(c14nAlg)) throw new Error(`${what}: canonicalization ${c14nAlg} is not supported (only C14N 1.0 / 1.1 without comments)`);
  const sigAlg = attr(dsChild(signedInfo, "SignatureMethod", what), "Algorithm") ?? "";
  const sigHash = SIGNATURES[sigAlg];
  if (!sigHash) throw new Error(`${what}: signature method ${sigAlg} is not supported (only ECDSA-SHA384/SHA256)`);
  const refs = kids(signedInfo).filter((c) => localName(c.name) === "Reference");
  if (refs.length !== 1 || attr(refs[0], "URI") !== "") throw new Error(`${what}: expected one ds:Reference with URI="" (the whole document), found ${refs.length}`);
  const ref = refs[0];
  const transforms = kids(dsChild(ref, "Transforms", what)).map((t) => attr(t, "Algorithm") ?? "");
  if (transforms[0] !== ENVELOPED || transforms.length > 2 || (transforms.length === 2 && !C14N.has(transforms[1]))) {
    throw new Error(`${what}: transforms [${transforms.join(", ")}] are not supported (only enveloped-signature, then C14N without comments)`);
  }
  const digestAlg = attr(dsChild(ref, "DigestMethod", what), "Algorithm") ?? "";
  const digestHash = DIGESTS[digestAlg];
  if (!digestHash) throw new Error(`${what}: digest method ${digestAlg} is not supported (only SHA-256/384/512)`);
  const want = b64(text(dsChild(ref, "DigestValue", what)), `${what} DigestValue`);
  const got = createHash(digestHash).update(canonicalize(root, sig)).digest();
  if (!got.equals(want)) throw new Error(`${what}: the document's ${digestHash} digest does not match the signed DigestValue (the RIM was altered)`);

  const certs = kids(dsChild(dsChild(sig, "KeyInfo", what), "X509Data", what))
    .filter((c) => localName(c.name) === "X509Certificate")
    .map((c, i) => b64(text(c), `${what} certificate #${i}`));
  if (certs.length === 0) throw new Error(`${what}: KeyInfo carries no X509Certificate`);
  let chain;
  try {
    chain = verifyChainToRoot(certs, NVIDIA_RIM_ROOT_CA_PEM, now, `${what} signer`);
  } catch (e) {
    throw new Error(`${what}: ${errorText(e)}`);
  }
  const key = chain[0].publicKey;
  if (key.asymmetricKeyType !== "ec") throw new Error(`${what}: the signing certificate has no ECDSA key`);
  const sigValue = b64(text(dsChild(sig, "SignatureValue", what)), `${what} SignatureValue`);
  if (!cryptoVerify(sigHash, canonicalize(signedInfo), { key, dsaEncoding: "ieee-p1363" }, sigValue)) {
    throw new Error(`${what}: the XML signature does not verify with "${chain[0].subject.replace(/\n/g, ", ")}"`);
  }

  const meta = kids(root).find((c) => localName(c.name) === "Meta");
  const payload = kids(root).find((c) => localName(c.name) === "Payload");
  if (!payload) throw new EvidenceFormatError(`${what}: no <Payload>`);
  const measurements: RimMeasurement[] = [];
  for (const r of kids(payload)) {
    if (localName(r.name) !== "Resource" || attr(r, "type") !== "Measurement") continue;
    if ((attr(r, "active") ?? "").toLowerCase() !== "true") continue;
    const idx = Number(attr(r, "index"));
    const size = Number(attr(r, "size"));
    if (!Number.isInteger(idx) || idx < 0 || !Number.isInteger(size) || size <= 0) throw new EvidenceFormatError(`${what}: a measurement has no valid index/size`);
    const values = r.attrs.filter((a) => /^Hash\d+$/.test(localName(a.name))).map((a) => a.value.toLowerCase());
    if (values.some((v) => !/^[0-9a-f]*$/.test(v) || v.length !== size * 2)) throw new EvidenceFormatError(`${what}: measurement ${idx} has a value that is not ${size} bytes of hex`);
    measurements.push({ index: idx + 1, size, values });
  }
  return {
    name: attr(root, "name") ?? "",
    version: (meta && attr(meta, "colloquialVersion")) ?? "",
    tagId: attr(root, "tagId") ?? "",
    measurements,
    signerSubject: chain[0].subject.replace(/\n/g, ", "),
  };
}
