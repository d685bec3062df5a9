// Intel TDX DCAP quote parser (quote versions 4 and 5; TD report 1.0 and 1.5 bodies). Pure parsing: no
// signature is checked here (see verify.ts). Every length comes from untrusted bytes and is bounds-checked.
//
// Layout (all integers little-endian):
//   header (48 B) at 0: u16 version | u16 attestation key type (2 = ECDSA P-256) | u32 TEE type (0x81 = TDX)
//                       | u16 reserved | u16 reserved | 16 B QE vendor id | 20 B user data
//   v4: TD report 1.0 body (584 B) at 48.
//   v5: u16 body type (2 = TD report 1.0, 3 = TD report 1.5) | u32 body size, body at 54.
//   TD report body: 16 TEE_TCB_SVN | 48 MRSEAM | 48 MRSIGNERSEAM | 8 SEAMATTRIBUTES | 8 TDATTRIBUTES | 8 XFAM
//                   | 48 MRTD | 48 MRCONFIGID | 48 MROWNER | 48 MROWNERCONFIG | 4 x 48 RTMR0..3 | 64 REPORTDATA
//                   [1.5 only: 16 TEE_TCB_SVN_2 | 48 MRSERVICETD]
//   signed region = quote[0 : body start + body size]; then u32 signature data length and signature data:
//     64 quote signature r||s | 64 attestation key x||y | u16 cert data type (6) | u32 size |
//     384 QE report (SGX report body) | 64 QE report signature r||s | u16 QE auth size | QE auth data |
//     u16 inner cert data type (5 = PCK chain PEM) | u32 size | PEM chain (leaf, intermediate CA, root)
//   Real quotes may carry bytes after the signature data (zero padding; go-tdx-guest's sample carries 39 non-zero
//   bytes). They are outside every signature, so the parser reports them (`trailing`) and the verifier warns.
import { toHex as hex, isAllZero } from "../../crypto/bytes.js";
import { EvidenceFormatError, EvidenceReader } from "../errors.js";

export const QUOTE_HEADER_LEN = 48;
export const QUOTE_MAX_LEN = 64 * 1024;
export const TEE_TYPE_TDX = 0x81;
export const TEE_TYPE_SGX = 0x00;
export const ATT_KEY_TYPE_ECDSA_P256 = 2;
export const BODY_TYPE_SGX = 1;
export const BODY_TYPE_TD10 = 2;
export const BODY_TYPE_TD15 = 3;
export const TD10_BODY_LEN = 584;
export const TD15_BODY_LEN = 648;
export const V5_BODY_DESCRIPTOR_LEN = 6;
export const CERT_TYPE_QE_REPORT = 6;
export const CERT_TYPE_PCK_CHAIN = 5;
export const SGX_REPORT_BODY_LEN = 384;
export const ECDSA_P256_SIG_LEN = 64;
export const ECDSA_P256_KEY_LEN = 64;
export const INTEL_QE_VENDOR_ID = "939a7233f79c4ca9940a0db3957f0607";

/** TDATTRIBUTES bits (u64). */
export const TD_ATTR = { DEBUG: 0n, SEPT_VE_DISABLE: 28n, PKS: 30n, KL: 31n, PERFMON: 63n } as const;

export interface TdReport {
  teeTcbSvn: Buffer;
  mrSeam: Buffer;
  mrSignerSeam: Buffer;
  seamAttributes: Buffer;
  tdAttributes: Buffer;
  xfam: Buffer;
  mrTd: Buffer;
  mrConfigId: Buffer;
  mrOwner: Buffer;
  mrOwnerConfig: Buffer;
  rtmr: [Buffer, Buffer, Buffer, Buffer];
  reportData: Buffer;
  teeTcbSvn2?: Buffer;
  mrServiceTd?: Buffer;
}

export interface SgxReportBody {
  raw: Buffer;
  cpuSvn: Buffer;
  miscSelect: number;
  attributes: Buffer;
  mrEnclave: Buffer;
  mrSigner: Buffer;
  isvProdId: number;
  isvSvn: number;
  reportData: Buffer;
}

export interface TdxQuote {
  version: 4 | 5;
  attestationKeyType: number;
  teeType: number;
  qeVendorId: Buffer;
  userData: Buffer;
  bodyType: number;
  body: TdReport;
  /** The bytes covered by the quote signature. */
  signedRegion: Buffer;
  /** Length of the quote without trailing padding. */
  quoteLen: number;
  /** Bytes after the signature data: covered by no signature, ignored (the verifier warns when they are non-zero). */
  trailing: { length: number; nonZero: boolean };
  signature: Buffer;
  attestationKey: Buffer;
  qeReport: SgxReportBody;
  qeReportSignature: Buffer;
  qeAuthData: Buffer;
  pckChainPem: string;
}

function parseTdReport(r: EvidenceReader, bodyType: number): TdReport {
  const b = (n: number, f: string) => r.bytes(n, f);
  const rep: TdReport = {
    teeTcbSvn: b(16, "TEE_TCB_SVN"),
    mrSeam: b(48, "MRSEAM"),
    mrSignerSeam: b(48, "MRSIGNERSEAM"),
    seamAttributes: b(8, "SEAMATTRIBUTES"),
    tdAttributes: b(8, "TDATTRIBUTES"),
    xfam: b(8, "XFAM"),
    mrTd: b(48, "MRTD"),
    mrConfigId: b(48, "MRCONFIGID"),
    mrOwner: b(48, "MROWNER"),
    mrOwnerConfig: b(48, "MROWNERCONFIG"),
    rtmr: [b(48, "RTMR0"), b(48, "RTMR1"), b(48, "RTMR2"), b(48, "RTMR3")],
    reportData: b(64, "REPORTDATA"),
  };
  if (bodyType === BODY_TYPE_TD15) {
    rep.teeTcbSvn2 = b(16, "TEE_TCB_SVN_2");
    rep.mrServiceTd = b(48, "MRSERVICETD");
  }
  return rep;
}

export function parseSgxReportBody(raw: Buffer): SgxReportBody {
  if (raw.length !== SGX_REPORT_BODY_LEN) throw new EvidenceFormatError(`QE report must be ${SGX_REPORT_BODY_LEN} bytes`);
  return {
    raw,
    cpuSvn: raw.subarray(0, 16),
    miscSelect: raw.readUInt32LE(16),
    attributes: raw.subarray(48, 64),
    mrEnclave: raw.subarray(64, 96),
    mrSigner: raw.subarray(128, 160),
    isvProdId: raw.readUInt16LE(256),
    isvSvn: raw.readUInt16LE(258),
    reportData: raw.subarray(320, 384),
  };
}

/** Parses a TDX quote. Throws EvidenceFormatError with the failing field on malformed input. */
export function parseTdxQuote(input: Uint8Array): TdxQuote {
  const quote = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (quote.length > QUOTE_MAX_LEN) throw new EvidenceFormatError(`TDX quote is ${quote.length} bytes; the limit is ${QUOTE_MAX_LEN}`);
  const r = new EvidenceReader(quote, "TDX quote");
  const version = r.u16("header.version");
  if (version !== 4 && version !== 5) {
    throw new EvidenceFormatError(`TDX quote: version ${version} is not supported (expected 4 or 5; version 3 is SGX-only)`);
  }
  const attestationKeyType = r.u16("header.attestation_key_type");
  if (attestationKeyType !== ATT_KEY_TYPE_ECDSA_P256) {
    throw new EvidenceFormatError(`TDX quote: attestation key type ${attestationKeyType} is not supported (expected 2, ECDSA P-256)`);
  }
  const teeType = r.u32("header.tee_type");
  if (teeType !== TEE_TYPE_TDX) {
    throw new EvidenceFormatError(
      `TDX quote: TEE type 0x${teeType.toString(16)} is not TDX (0x81)${teeType === TEE_TYPE_SGX ? "; SGX enclave quotes are not accepted" : ""}`,
    );
  }
  r.skip(4, "header.reserved");
  const qeVendorId = r.bytes(16, "header.qe_vendor_id");
  const userData = r.bytes(20, "header.user_data");

  let bodyType = BODY_TYPE_TD10;
  let bodySize = TD10_BODY_LEN;
  if (version === 5) {
    bodyType = r.u16("body.type");
    bodySize = r.u32("body.size");
    const expected = bodyType === BODY_TYPE_TD10 ? TD10_BODY_LEN : bodyType === BODY_TYPE_TD15 ? TD15_BODY_LEN : -1;
    if (expected < 0) {
      throw new EvidenceFormatError(
        `TDX quote v5: body type ${bodyType} is not a TD report (2 = TDX 1.0, 3 = TDX 1.5${bodyType === BODY_TYPE_SGX ? "; 1 is an SGX enclave report" : ""})`,
      );
    }
    if (bodySize !== expected) throw new EvidenceFormatError(`TDX quote v5: body type ${bodyType} must be ${expected} bytes, header says ${bodySize}`);
  }
  const bodyStart = r.offset;
  const body = parseTdReport(r, bodyType);
  const signedEnd = bodyStart + bodySize;
  if (r.offset !== signedEnd) throw new EvidenceFormatError("TDX quote: internal body length mismatch");

  const sigDataLen = r.u32("signature_data_len");
  const sigEnd = signedEnd + 4 + sigDataLen;
  if (sigEnd > quote.length) {
    throw new EvidenceFormatError(`TDX quote: signature data claims ${sigDataLen} bytes but only ${quote.length - signedEnd - 4} remain`);
  }
  const trailing = quote.subarray(sigEnd);
  const s = new EvidenceReader(quote, "TDX quote signature data", signedEnd + 4, sigEnd);
  const signature = s.bytes(ECDSA_P256_SIG_LEN, "quote_signature");
  const attestationKey = s.bytes(ECDSA_P256_KEY_LEN, "attestation_key");
  const certType = s.u16("certification_data.type");
  if (certType !== CERT_TYPE_QE_REPORT) {
    throw new EvidenceFormatError(`TDX quote: certification data type ${certType} is not supported (expected 6, QE report certification data)`);
  }
  const certSize = s.u32("certification_data.size");
  const c = new EvidenceReader(quote, "TDX quote QE certification data", s.offset, s.offset + Math.min(certSize, s.remaining));
  if (certSize > s.remaining) throw new EvidenceFormatError(`TDX quote: certification data claims ${certSize} bytes but only ${s.remaining} remain`);
  const qeReportRaw = c.bytes(SGX_REPORT_BODY_LEN, "qe_report");
  const qeReportSignature = c.bytes(ECDSA_P256_SIG_LEN, "qe_report_signature");
  const qeAuthLen = c.u16("qe_auth_data.size");
  const qeAuthData = c.bytes(qeAuthLen, "qe_auth_data");
  const innerType = c.u16("pck_cert_chain.type");
  if (innerType !== CERT_TYPE_PCK_CHAIN) {
    throw new EvidenceFormatError(`TDX quote: inner certification data type ${innerType} is not supported (expected 5, PCK certificate chain)`);
  }
  const innerSize = c.u32("pck_cert_chain.size");
  const pem = c.bytes(innerSize, "pck_cert_chain");
  return {
    version,
    attestationKeyType,
    teeType,
    qeVendorId,
    userData,
    bodyType,
    body,
    signedRegion: quote.subarray(0, signedEnd),
    quoteLen: sigEnd,
    trailing: { length: trailing.length, nonZero: !isAllZero(trailing) },
    signature,
    attestationKey,
    qeReport: parseSgxReportBody(qeReportRaw),
    qeReportSignature,
    qeAuthData,
    pckChainPem: pem.toString("latin1").replace(/\0+$/, ""),
  };
}

export function tdAttributeFlags(tdAttributes: Buffer) {
  const v = tdAttributes.readBigUInt64LE(0);
  const bit = (n: bigint) => ((v >> n) & 1n) === 1n;
  return {
    debug: bit(TD_ATTR.DEBUG),
    septVeDisable: bit(TD_ATTR.SEPT_VE_DISABLE),
    pks: bit(TD_ATTR.PKS),
    kl: bit(TD_ATTR.KL),
    perfmon: bit(TD_ATTR.PERFMON),
  };
}

/** Measurements as lowercase hex, in the shape the CLI and verdicts report. */
export function tdxMeasurements(b: TdReport) {
  return {
    mrtd: hex(b.mrTd),
    rtmr: b.rtmr.map(hex),
    mrconfigid: hex(b.mrConfigId),
    mrowner: hex(b.mrOwner),
    mrownerconfig: hex(b.mrOwnerConfig),
    mrseam: hex(b.mrSeam),
  };
}
