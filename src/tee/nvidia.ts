// NVIDIA GPU confidential-computing evidence (Hopper/Blackwell SPDM 1.1 GET_MEASUREMENTS transcript) verifier.
//
// Evidence = request || response, as the driver returns it (nvtrust "attestation report"):
//   request (37 B):  u8 SPDM version (0x11) | u8 code 0xE0 | u8 param1 | u8 param2 (0xFF = all blocks)
//                    | 32 B requester nonce | u8 slot id
//   response:        u8 version | u8 code 0x60 | u8 param1 | u8 param2 | u8 number of blocks
//                    | u24 measurement record length | record | 32 B responder nonce | u16 opaque length
//                    | opaque data (TLVs: u16 type, u16 size, value) | 96 B signature (ECDSA P-384 r||s)
//   record block:    u8 index | u8 measurement spec | u16 size | u8 DMTF value type | u16 value size | value
// The signature covers request || response-without-signature (SHA-384), made by the leaf of the GPU's
// certificate chain (GSP FMC leaf -> GSP BROM -> GH100 Provisioner ICA -> GH100 Identity -> NVIDIA Device
// Identity CA, pinned). Reference measurements (RIMs, whose XML signatures rim.ts checks) are compared when files
// are supplied; OCSP answers stapled by the worker are checked offline (ocsp.ts); asking NVIDIA's OCSP service is
// the worker's job (gpu-collect.ts), never the verifier's.
import { createHash, verify as cryptoVerify } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { toHex as hex } from "../crypto/bytes.js";
import { EvidenceFormatError, errorText, EvidenceReader } from "./errors.js";
import { NVIDIA_DEVICE_IDENTITY_CA_PEM } from "./roots/index.js";
import { testNvidiaRootFor } from "./roots/test-roots.js";
import { checkOcsp } from "./ocsp.js";
import { verifyRim, type Rim } from "./rim.js";
import { CheckList, type Verdict } from "./verdict.js";
import { splitPem, verifyChainToRoot } from "./x509.js";

export const SPDM_VERSION_1_1 = 0x11;
export const SPDM_GET_MEASUREMENTS = 0xe0;
export const SPDM_MEASUREMENTS = 0x60;
export const SPDM_REQUEST_LEN = 37;
export const SPDM_NONCE_LEN = 32;
export const NV_SIGNATURE_LEN = 96;
export const NV_EVIDENCE_MAX_LEN = 256 * 1024;
/** Opaque-data field ids (nvtrust). */
export const NV_OPAQUE = { DRIVER_VERSION: 3, GPU_INFO: 4, SKU: 5, VBIOS_VERSION: 6, CHIP_SKU: 15, PROJECT: 17, PROJECT_SKU: 18 } as const;

export interface SpdmMeasurementBlock {
  index: number;
  spec: number;
  valueType: number;
  value: Buffer;
}

export interface NvidiaEvidence {
  raw: Buffer;
  requesterNonce: Buffer;
  slot: number;
  blocks: SpdmMeasurementBlock[];
  responderNonce: Buffer;
  opaque: Map<number, Buffer>;
  signedPart: Buffer;
  signature: Buffer;
}

export function parseNvidiaEvidence(input: Uint8Array): NvidiaEvidence {
  const raw = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (raw.length > NV_EVIDENCE_MAX_LEN) throw new EvidenceFormatError(`NVIDIA evidence is ${raw.length} bytes; the limit is ${NV_EVIDENCE_MAX_LEN}`);
  const r = new EvidenceReader(raw, "NVIDIA SPDM evidence");
  const reqVersion = r.u8("request.version");
  const reqCode = r.u8("request.code");
  if (reqVersion !== SPDM_VERSION_1_1 || reqCode !== SPDM_GET_MEASUREMENTS) {
    throw new EvidenceFormatError(`NVIDIA evidence: expected an SPDM 1.1 GET_MEASUREMENTS request (11 e0), got ${hex(raw.subarray(0, 2))}`);
  }
  r.skip(2, "request.params");
  const requesterNonce = r.bytes(SPDM_NONCE_LEN, "request.nonce");
  const slot = r.u8("request.slot");
  const resVersion = r.u8("response.version");
  const resCode = r.u8("response.code");
  if (resVersion !== SPDM_VERSION_1_1 || resCode !== SPDM_MEASUREMENTS) {
    throw new EvidenceFormatError(`NVIDIA evidence: expected an SPDM 1.1 MEASUREMENTS response (11 60), got ${resVersion.toString(16)} ${resCode.toString(16)}`);
  }
  r.skip(2, "response.params");
  const nBlocks = r.u8("response.number_of_blocks");
  const recLen = r.u16("response.record_length") + (r.u8("response.record_length.hi") << 16);
  const rec = new EvidenceReader(raw, "NVIDIA measurement record", r.offset, r.offset + Math.min(recLen, r.remaining));
  if (recLen > r.remaining) throw new EvidenceFormatError(`NVIDIA evidence: measurement record claims ${recLen} bytes, ${r.remaining} remain`);
  r.skip(recLen, "response.record");
  const blocks: SpdmMeasurementBlock[] = [];
  while (rec.remaining > 0) {
    const index = rec.u8("block.index");
    const spec = rec.u8("block.spec");
    const size = rec.u16("block.size");
    const b = new EvidenceReader(raw, `NVIDIA measurement block ${index}`, rec.offset, rec.offset + Math.min(size, rec.remaining));
    rec.skip(size, `block ${index}`);
    const valueType = b.u8("dmtf.type");
    const valueSize = b.u16("dmtf.size");
    const value = b.bytes(valueSize, "dmtf.value");
    if (b.remaining !== 0) throw new EvidenceFormatError(`NVIDIA measurement block ${index}: ${b.remaining} bytes after the value`);
    blocks.push({ index, spec, valueType, value });
  }
  if (blocks.length !== nBlocks) throw new EvidenceFormatError(`NVIDIA evidence: header says ${nBlocks} blocks, record holds ${blocks.length}`);
  const responderNonce = r.bytes(SPDM_NONCE_LEN, "response.nonce");
  const opaqueLen = r.u16("response.opaque_length");
  const o = new EvidenceReader(raw, "NVIDIA opaque data", r.offset, r.offset + Math.min(opaqueLen, r.remaining));
  r.skip(opaqueLen, "response.opaque");
  const opaque = new Map<number, Buffer>();
  while (o.remaining > 0) {
    const type = o.u16("opaque.type");
    const size = o.u16("opaque.size");
    opaque.set(type, o.bytes(size, `opaque field ${type}`));
  }
  const signedEnd = r.offset;
  const signature = r.bytes(NV_SIGNATURE_LEN, "response.signature");
  if (r.remaining !== 0) throw new EvidenceFormatError(`NVIDIA evidence: ${r.remaining} unexpected bytes after the signature`);
  return { raw, requesterNonce, slot, blocks, responderNonce, opaque, signedPart: raw.subarray(0, signedEnd), signature };
}

/** Reference measurements: index -> allowed hex values (any of them may match). */
export type ReferenceMeasurements = Map<number, string[]>;

/**
 * Reads reference measurements from a file or a folder of files, keyed by SPDM measurement block index. Two formats:
 * - NVIDIA RIM (SWID XML, signed): its XML signature and certificate chain to NVIDIA's RIM root are verified at
 *   `now` (rim.ts verifyRim); a RIM that does not verify is refused. Active measurements only; RIM index i is SPDM
 *   block i+1. An index active in two RIMs (driver and VBIOS) is refused, as NVIDIA's verifier does.
 * - JSON `{ "measurements": { "<SPDM block index>": "hex" | ["hex", ...] } }`: unsigned, so trusted configuration.
 */
export function loadReferenceMeasurements(path: string, opts: { now?: Date } = {}): ReferenceMeasurements {
  const files = statSync(path).isDirectory() ? readdirSync(path).sort().map((f) => join(path, f)) : [path];
  const out: ReferenceMeasurements = new Map();
  const fromRim = new Map<number, string>();
  const add = (i: number, v: string) => {
    const list = out.get(i) ?? [];
    list.push(v.toLowerCase());
    out.set(i, list);
  };
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    if (text.trimStart().startsWith("{")) {
      const j = JSON.parse(text) as { measurements?: Record<string, string | string[]> };
      if (!j.measurements || typeof j.measurements !== "object") throw new Error(`${file}: expected {"measurements": {...}}`);
      for (const [k, v] of Object.entries(j.measurements)) for (const h of Array.isArray(v) ? v : [v]) add(Number(k), h);
      continue;
    }
    let rim: Rim;
    try {
      rim = verifyRim(text, { now: opts.now, what: `RIM ${file}` });
    } catch (e) {
      throw new Error(`${errorText(e)}. Only NVIDIA-signed RIMs are accepted as XML; reference values you trust otherwise go in a JSON file`);
    }
    addRimMeasurements(out, fromRim, rim, file);
  }
  return out;
}

function addRimMeasurements(out: ReferenceMeasurements, fromRim: Map<number, string>, rim: Rim, source: string): void {
  for (const m of rim.measurements) {
    const other = fromRim.get(m.index);
    if (other) throw new Error(`measurement ${m.index - 1} (SPDM block ${m.index}) is active in both ${other} and ${source}; NVIDIA's verifier refuses such a pair of RIMs`);
    fromRim.set(m.index, source);
    out.set(m.index, [...(out.get(m.index) ?? []), ...m.values.map((v) => v.toLowerCase())]);
  }
}

/** Reference measurements from verified RIMs (driver + VBIOS); an index active in two of them is refused. */
export function referenceFromRims(rims: { rim: Rim; source: string }[]): ReferenceMeasurements {
  const out: ReferenceMeasurements = new Map();
  const fromRim = new Map<number, string>();
  for (const r of rims) addRimMeasurements(out, fromRim, r.rim, r.source);
  return out;
}

export interface NvidiaVerifyOptions {
  now?: Date;
  /** The nonce this verifier asked the GPU to sign (hex or bytes). Required for freshness. */
  expectedNonce?: string | Buffer;
  /** Reference measurements (e.g. from loadReferenceMeasurements). Absent: the comparison is skipped and noted. */
  reference?: ReferenceMeasurements;
  /** Override the pinned root (tests show that a wrong root fails). */
  rootPem?: string;
  /** Stapled OCSP answers (one per certificate below the root, leaf first), checked offline. */
  ocsp?: Buffer[];
}

export interface NvidiaVerdict extends Verdict {
  platform: "nvidia";
  evidence?: NvidiaEvidence;
}

const printable = (b: Buffer) => b.toString("latin1").replace(/\0+$/, "");

export function verifyNvidiaEvidence(evidenceBytes: Uint8Array, certChainPem: string | Buffer, opts: NvidiaVerifyOptions = {}): NvidiaVerdict {
  const now = opts.now ?? new Date();
  let ev: NvidiaEvidence;
  try {
    ev = parseNvidiaEvidence(evidenceBytes);
  } catch (e) {
    return { platform: "nvidia", verified: false, status: "Invalid", insecure: false, measurements: {}, imageDigest: "", reportData: "", errors: [errorText(e)], checks: {}, advisoryIds: [], details: {} };
  }
  const cl = new CheckList();
  // NVIDIA's pinned CA, unless test code installed a test root that issued this chain (then: insecure).
  const testRoot = opts.rootPem === undefined ? testNvidiaRootFor(splitPem(certChainPem)) : undefined;
  const chain = cl.run("certChainToNvidiaRoot", () => verifyChainToRoot(splitPem(certChainPem), opts.rootPem ?? testRoot ?? NVIDIA_DEVICE_IDENTITY_CA_PEM, now, "NVIDIA GPU"));
  cl.run("measurementSignature", () => {
    if (!chain) throw new Error("GPU measurement signature not checked: the certificate chain is not trusted");
    if (!cryptoVerify("sha384", ev.signedPart, { key: chain[0].publicKey, dsaEncoding: "ieee-p1363" }, ev.signature)) {
      throw new Error("GPU measurement signature does not verify with the device certificate (evidence altered or chain of another GPU)");
    }
  });
  if (opts.ocsp) {
    const staples = opts.ocsp;
    cl.run("ocspGood", () => {
      if (!chain) throw new Error("OCSP answers not checked: the certificate chain is not trusted");
      const below = chain.length - 1; // the pinned root has no OCSP answer
      if (staples.length < below) throw new Error(`GPU evidence carries ${staples.length} OCSP answer(s) for ${below} certificate(s)`);
      for (let i = 0; i < below; i++) checkOcsp(staples[i], chain[i], chain[i + 1], opts.rootPem ?? testRoot ?? NVIDIA_DEVICE_IDENTITY_CA_PEM, now);
    });
  }
  if (opts.expectedNonce !== undefined) {
    const want = typeof opts.expectedNonce === "string" ? opts.expectedNonce.toLowerCase() : hex(opts.expectedNonce);
    cl.run("nonceMatches", () => {
      if (hex(ev.requesterNonce) !== want) throw new Error(`GPU evidence nonce ${hex(ev.requesterNonce)} is not the expected ${want} (replayed or stale evidence)`);
    });
  }
  const measurements: Record<string, string> = {};
  for (const b of ev.blocks) measurements[String(b.index)] = hex(b.value);
  const notes: string[] = [];
  if (opts.reference) {
    const ref = opts.reference;
    cl.run("referenceMeasurements", () => {
      const bad: string[] = [];
      for (const [idx, allowed] of ref) {
        const got = measurements[String(idx)];
        if (got === undefined) bad.push(`index ${idx} missing from the evidence`);
        else if (!allowed.includes(got)) bad.push(`index ${idx} = ${got.slice(0, 16)}... not in the reference values`);
      }
      if (bad.length) throw new Error(`GPU measurements differ from the reference (RIM): ${bad.join("; ")}`);
    });
  } else notes.push("no reference measurements (RIM) given: measurement values were not compared");
  if (!opts.ocsp) notes.push("no stapled OCSP answers: revocation status was not checked (offline mode)");
  const verified = cl.allPassed;
  return {
    platform: "nvidia",
    verified,
    status: verified ? "Verified" : "Invalid",
    insecure: testRoot !== undefined,
    ...(testRoot ? { testRoot: true } : {}),
    measurements,
    imageDigest: createHash("sha256").update(ev.raw).digest("hex"),
    reportData: hex(ev.requesterNonce),
    errors: cl.errors,
    checks: cl.checks,
    advisoryIds: [],
    details: {
      blocks: ev.blocks.length,
      responderNonce: hex(ev.responderNonce),
      driverVersion: ev.opaque.has(NV_OPAQUE.DRIVER_VERSION) ? printable(ev.opaque.get(NV_OPAQUE.DRIVER_VERSION)!) : undefined,
      vbiosVersion: ev.opaque.has(NV_OPAQUE.VBIOS_VERSION) ? hex(ev.opaque.get(NV_OPAQUE.VBIOS_VERSION)!) : undefined,
      leafSubject: chain?.[0].subject.replace(/\n/g, ", "),
      notes,
    },
    evidence: ev,
  };
}
