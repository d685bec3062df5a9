// The `sim` platform: attestation-shaped evidence for machines without a TEE (development and tests).
// It is INSECURE: anyone can produce it, because the signing key below is public by construction. Verdicts
// carry insecure=true and status INSECURE-SIM, and production policies refuse it (policy.allowSim=false).
//
// Layout (412 bytes, integers little-endian), modelled on a TDX TD report so tools treat both alike:
//   0    8  magic "CCSIMv01"
//   8    2  layout version (1)
//   10   2  flags (bit 0: debug)
//   12  48  MRTD (here: SHA-384 of the simulated image name)
//   60 192  RTMR0..RTMR3 (4 x 48)
//   252 64  REPORTDATA
//   316 32  signer public key (Ed25519, must be the development key)
//   348 64  Ed25519 signature over bytes [0, 348)
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import { toHex as hex } from "../crypto/bytes.js";
import { EvidenceFormatError, errorText, EvidenceReader } from "./errors.js";
import { CheckList, type Verdict } from "./verdict.js";

export const SIM_MAGIC = Buffer.from("CCSIMv01", "latin1");
export const SIM_LAYOUT_VERSION = 1;
export const SIM_REPORT_LEN = 412;
const SIM_SIGNED_LEN = 348;
const SIM_FLAG_DEBUG = 1;
const MEASUREMENT_LEN = 48;
const REPORT_DATA_LEN = 64;
const RTMR_COUNT = 4;
export const SIM_STATUS = "INSECURE-SIM";

/** PKCS#8 DER prefix for a raw 32-byte Ed25519 seed (RFC 8410). */
const ED25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
/** Seed of the public, INSECURE development key. Deterministic so that every build agrees on it. */
const INSECURE_SIM_DEV_KEY_SEED = createHash("sha256").update("cocoon-ts INSECURE sim development attestation key v1").digest();

/** The INSECURE development signing key of the sim platform. Anyone can sign with it; never trust it. */
export const INSECURE_SIM_DEV_PRIVATE_KEY: KeyObject = createPrivateKey({
  key: Buffer.concat([ED25519_PKCS8_PREFIX, INSECURE_SIM_DEV_KEY_SEED]),
  format: "der",
  type: "pkcs8",
});
export const INSECURE_SIM_DEV_PUBLIC_KEY: Buffer = Buffer.from(
  createPublicKey(INSECURE_SIM_DEV_PRIVATE_KEY).export({ format: "jwk" }).x as string,
  "base64url",
);

/** MRTD of the default simulated image. */
export const SIM_DEFAULT_MRTD = createHash("sha384").update("cocoon-ts sim image v1").digest();

export interface SimReport {
  raw: Buffer;
  version: number;
  debug: boolean;
  mrtd: Buffer;
  rtmr: Buffer[];
  reportData: Buffer;
  signer: Buffer;
  signature: Buffer;
}

export function createSimEvidence(opts: { reportData: Buffer; mrtd?: Buffer; rtmr?: Buffer[]; debug?: boolean }): Buffer {
  if (opts.reportData.length !== REPORT_DATA_LEN) throw new Error(`sim evidence: reportData must be ${REPORT_DATA_LEN} bytes`);
  const mrtd = opts.mrtd ?? SIM_DEFAULT_MRTD;
  const rtmr = opts.rtmr ?? Array.from({ length: RTMR_COUNT }, () => Buffer.alloc(MEASUREMENT_LEN));
  if (mrtd.length !== MEASUREMENT_LEN || rtmr.length !== RTMR_COUNT || rtmr.some((r) => r.length !== MEASUREMENT_LEN)) {
    throw new Error("sim evidence: MRTD and each of the 4 RTMRs must be 48 bytes");
  }
  const head = Buffer.alloc(12);
  SIM_MAGIC.copy(head, 0);
  head.writeUInt16LE(SIM_LAYOUT_VERSION, 8);
  head.writeUInt16LE(opts.debug ? SIM_FLAG_DEBUG : 0, 10);
  const signed = Buffer.concat([head, mrtd, ...rtmr, opts.reportData, INSECURE_SIM_DEV_PUBLIC_KEY]);
  return Buffer.concat([signed, sign(null, signed, INSECURE_SIM_DEV_PRIVATE_KEY)]);
}

export function isSimEvidence(b: Uint8Array): boolean {
  return b.length >= SIM_MAGIC.length && Buffer.from(b.buffer, b.byteOffset, SIM_MAGIC.length).equals(SIM_MAGIC);
}

export function parseSimEvidence(input: Uint8Array): SimReport {
  const raw = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (raw.length !== SIM_REPORT_LEN) throw new EvidenceFormatError(`sim evidence must be ${SIM_REPORT_LEN} bytes, got ${raw.length}`);
  const r = new EvidenceReader(raw, "sim evidence");
  if (!r.bytes(8, "magic").equals(SIM_MAGIC)) throw new EvidenceFormatError('sim evidence: bad magic (expected "CCSIMv01")');
  const version = r.u16("version");
  if (version !== SIM_LAYOUT_VERSION) throw new EvidenceFormatError(`sim evidence: layout version ${version} is not supported`);
  const flags = r.u16("flags");
  return {
    raw,
    version,
    debug: (flags & SIM_FLAG_DEBUG) !== 0,
    mrtd: r.bytes(MEASUREMENT_LEN, "MRTD"),
    rtmr: Array.from({ length: RTMR_COUNT }, (_, i) => r.bytes(MEASUREMENT_LEN, `RTMR${i}`)),
    reportData: r.bytes(REPORT_DATA_LEN, "REPORTDATA"),
    signer: r.bytes(32, "signer"),
    signature: r.bytes(64, "signature"),
  };
}

export function simImageDigest(s: Pick<SimReport, "mrtd" | "rtmr">): string {
  const zeros = Buffer.alloc(MEASUREMENT_LEN);
  const h = createHash("sha256").update(s.mrtd).update(zeros).update(zeros).update(zeros);
  for (const r of s.rtmr) h.update(r);
  return h.digest("hex");
}

export interface SimVerdict extends Verdict {
  platform: "sim";
}

export function verifySimEvidence(input: Uint8Array, opts: { allowDebug?: boolean } = {}): SimVerdict {
  let s: SimReport;
  try {
    s = parseSimEvidence(input);
  } catch (e) {
    return { platform: "sim", verified: false, status: "Invalid", insecure: true, measurements: {}, imageDigest: "", reportData: "", errors: [errorText(e)], checks: {}, advisoryIds: [], details: {} };
  }
  const cl = new CheckList();
  cl.run("signerIsDevKey", () => {
    if (!s.signer.equals(INSECURE_SIM_DEV_PUBLIC_KEY)) throw new Error("sim evidence is signed by an unknown key (only the published development key is recognised)");
  });
  cl.run("signature", () => {
    const ok = verify(null, s.raw.subarray(0, SIM_SIGNED_LEN), INSECURE_SIM_DEV_PRIVATE_KEY, s.signature);
    if (!ok) throw new Error("sim evidence signature does not verify (evidence altered)");
  });
  if (s.debug && !opts.allowDebug) cl.fail("debugOff", "sim evidence has the debug flag set and the policy does not allow debug");
  const verified = cl.allPassed;
  return {
    platform: "sim",
    verified,
    status: verified ? SIM_STATUS : "Invalid",
    insecure: true,
    measurements: { mrtd: hex(s.mrtd), rtmr: s.rtmr.map(hex) },
    imageDigest: simImageDigest(s),
    reportData: hex(s.reportData),
    errors: cl.errors,
    checks: cl.checks,
    advisoryIds: [],
    details: { debug: s.debug, warning: "INSECURE: sim evidence is signed by a public development key; it proves nothing about the hardware" },
  };
}

/** HTTP response header that labels the attestation platform of the node that served a request. Its value is
 * `insecure-sim` whenever sim evidence is involved, so that nobody mistakes a development node for a TEE. */
export const ATTESTATION_HEADER = "x-cocoon-attestation";
export function attestationHeaderValue(p: { platform: string; insecure: boolean }): string {
  return p.insecure ? "insecure-sim" : p.platform;
}
/** One-line warning for logs and /status pages of nodes running on sim. */
export const SIM_WARNING = "INSECURE: running on the sim attestation platform (development key, no TEE).";

/**
 * SIM_WARNING plus why this node runs anyway, true for the policy in force (a node whose policy refuses sim does not
 * start at all, so "refused" is never the right thing to print here).
 */
export function simWarning(policy: { name: string; allowSim: boolean; attestedRoles: readonly string[] }, role: string): string {
  const why = policy.allowSim
    ? `Policy "${policy.name}" accepts sim for development; a production policy refuses sim ${role === "proxy" ? "proxies" : `${role}s`}.`
    : policy.attestedRoles.includes(role)
      ? `Policy "${policy.name}" refuses sim ${role === "proxy" ? "proxies" : `${role}s`}: peers will refuse this node.`
      : `Policy "${policy.name}" does not require hardware evidence from a ${role}.`;
  return `${SIM_WARNING} ${why}`;
}
