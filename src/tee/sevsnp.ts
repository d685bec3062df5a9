// AMD SEV-SNP attestation report parser and verifier (notes/attestation.md 2.1).
// Report layout (1184 bytes, little-endian): see SNP_OFFSETS below. The signature is ECDSA P-384/SHA-384 by the
// VCEK over report[0 : 0x2A0]; r and s are 72-byte little-endian, zero-padded values at 0x2A0 and 0x2E8.
// Chain: VCEK -> ASK -> ARK (RSASSA-PSS/SHA-384), ARK and ASK pinned per product (Milan, Genoa, Turin).
import { createHash, verify as cryptoVerify, type X509Certificate } from "node:crypto";
import { toHex as hex, isAllZero } from "../crypto/bytes.js";
import { EvidenceFormatError, errorText, EvidenceReader } from "./errors.js";
import { TAG, content, decodeSmallInt, expectTag, parseDer, readNode } from "./der.js";
import {
  AMD_GENOA_ARK_PEM,
  AMD_GENOA_ASK_PEM,
  AMD_MILAN_ARK_PEM,
  AMD_MILAN_ASK_PEM,
  AMD_TURIN_ARK_PEM,
  AMD_TURIN_ASK_PEM,
} from "./roots/index.js";
import { testAmdRootsFor } from "./roots/test-roots.js";
import { checkCrlFresh, parseCrl, verifyCrlSignature, type Crl } from "./crl.js";
import { CheckList, type Verdict } from "./verdict.js";
import { certFields, parseCert, splitPem, verifyChainToRoot } from "./x509.js";

export const SNP_REPORT_LEN = 0x4a0;
export const SNP_SIGNED_LEN = 0x2a0;
const SNP_SIG_COMPONENT_LEN = 72;
const P384_LEN = 48;
export const SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1;
/** POLICY bits (u64 at 0x08). */
export const SNP_POLICY_BIT = { SMT: 16n, MIGRATE_MA: 18n, DEBUG: 19n, SINGLE_SOCKET: 20n } as const;
/** Bits 2-4 of the flags word at 0x48 select the signing key. */
const SIGNING_KEY_SHIFT = 2;
const SIGNING_KEY_MASK = 0x7;
const SIGNING_KEY_NAMES: Record<number, string> = { 0: "VCEK", 1: "VLEK", 7: "none" };
const MASK_CHIP_KEY_BIT = 1;

export type SnpProduct = "Milan" | "Genoa" | "Turin";
export const AMD_ROOTS: Record<SnpProduct, { ark: string; ask: string }> = {
  Milan: { ark: AMD_MILAN_ARK_PEM, ask: AMD_MILAN_ASK_PEM },
  Genoa: { ark: AMD_GENOA_ARK_PEM, ask: AMD_GENOA_ASK_PEM },
  Turin: { ark: AMD_TURIN_ARK_PEM, ask: AMD_TURIN_ASK_PEM },
};

export interface TcbVersion {
  raw: string;
  bootloader: number;
  tee: number;
  snp: number;
  microcode: number;
  fmc?: number;
}

/** TCB_VERSION bytes: Milan/Genoa = [bl, tee, 0,0,0,0, snp, ucode]; Turin = [fmc, bl, tee, snp, 0,0,0, ucode]. */
export function decodeTcb(raw: Buffer, product: SnpProduct = "Milan"): TcbVersion {
  if (product === "Turin") return { raw: hex(raw), fmc: raw[0], bootloader: raw[1], tee: raw[2], snp: raw[3], microcode: raw[7] };
  return { raw: hex(raw), bootloader: raw[0], tee: raw[1], snp: raw[6], microcode: raw[7] };
}

export interface SnpReport {
  raw: Buffer;
  version: number;
  guestSvn: number;
  policy: bigint;
  familyId: Buffer;
  imageId: Buffer;
  vmpl: number;
  sigAlgo: number;
  currentTcb: Buffer;
  platformInfo: bigint;
  flags: number;
  reportData: Buffer;
  measurement: Buffer;
  hostData: Buffer;
  idKeyDigest: Buffer;
  authorKeyDigest: Buffer;
  reportId: Buffer;
  reportIdMa: Buffer;
  reportedTcb: Buffer;
  cpuid?: { family: number; model: number; stepping: number };
  chipId: Buffer;
  committedTcb: Buffer;
  currentVersion: string;
  committedVersion: string;
  launchTcb: Buffer;
  signatureR: Buffer;
  signatureS: Buffer;
}

/** Parses a 1184-byte report (versions 2, 3 and 5). Accepts raw bytes; hex text is handled by the caller. */
export function parseSnpReport(input: Uint8Array): SnpReport {
  const raw = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (raw.length !== SNP_REPORT_LEN) throw new EvidenceFormatError(`SEV-SNP report must be ${SNP_REPORT_LEN} bytes, got ${raw.length}`);
  const r = new EvidenceReader(raw, "SEV-SNP report");
  const version = r.u32("VERSION");
  if (version < 2 || version > 5) throw new EvidenceFormatError(`SEV-SNP report version ${version} is not supported (expected 2, 3 or 5)`);
  const at = (off: number, len: number) => raw.subarray(off, off + len);
  const ver = (off: number) => `${raw[off + 2]}.${raw[off + 1]}.${raw[off]}`;
  return {
    raw,
    version,
    guestSvn: raw.readUInt32LE(0x04),
    policy: raw.readBigUInt64LE(0x08),
    familyId: at(0x10, 16),
    imageId: at(0x20, 16),
    vmpl: raw.readUInt32LE(0x30),
    sigAlgo: raw.readUInt32LE(0x34),
    currentTcb: at(0x38, 8),
    platformInfo: raw.readBigUInt64LE(0x40),
    flags: raw.readUInt32LE(0x48),
    reportData: at(0x50, 64),
    measurement: at(0x90, 48),
    hostData: at(0xc0, 32),
    idKeyDigest: at(0xe0, 48),
    authorKeyDigest: at(0x110, 48),
    reportId: at(0x140, 32),
    reportIdMa: at(0x160, 32),
    reportedTcb: at(0x180, 8),
    cpuid: version >= 3 ? { family: raw[0x188], model: raw[0x189], stepping: raw[0x18a] } : undefined,
    chipId: at(0x1a0, 64),
    committedTcb: at(0x1e0, 8),
    currentVersion: ver(0x1e8),
    committedVersion: ver(0x1ec),
    launchTcb: at(0x1f0, 8),
    signatureR: at(0x2a0, SNP_SIG_COMPONENT_LEN),
    signatureS: at(0x2a0 + SNP_SIG_COMPONENT_LEN, SNP_SIG_COMPONENT_LEN),
  };
}

/** Domain prefix of the SEV-SNP image digest (docs/attestation.md "Image digests"). */
export const SNP_IMAGE_DIGEST_DOMAIN = "cocoon-ts/sev-snp-image/v1\n";
const SNP_MEASUREMENT_LEN = 48;
const SNP_HOST_DATA_LEN = 32;

/**
 * The 32-byte image digest of a SEV-SNP guest, the form the root contract's image lists hold:
 * SHA-256("cocoon-ts/sev-snp-image/v1\n" ‖ MEASUREMENT (48 B) ‖ HOST_DATA (32 B)). HOST_DATA is the host-chosen
 * launch data, included like TDX's MRCONFIGID/MROWNER so that a host cannot hand the same image other launch data.
 */
export function snpImageDigest(r: { measurement: Buffer; hostData: Buffer }): string {
  if (r.measurement.length !== SNP_MEASUREMENT_LEN) throw new Error(`SEV-SNP MEASUREMENT must be ${SNP_MEASUREMENT_LEN} bytes, got ${r.measurement.length}`);
  if (r.hostData.length !== SNP_HOST_DATA_LEN) throw new Error(`SEV-SNP HOST_DATA must be ${SNP_HOST_DATA_LEN} bytes, got ${r.hostData.length}`);
  return createHash("sha256").update(SNP_IMAGE_DIGEST_DOMAIN, "utf8").update(r.measurement).update(r.hostData).digest("hex");
}

export function snpPolicyFlags(policy: bigint) {
  const bit = (n: bigint) => ((policy >> n) & 1n) === 1n;
  return {
    abiMinor: Number(policy & 0xffn),
    abiMajor: Number((policy >> 8n) & 0xffn),
    smt: bit(SNP_POLICY_BIT.SMT),
    migrateMa: bit(SNP_POLICY_BIT.MIGRATE_MA),
    debug: bit(SNP_POLICY_BIT.DEBUG),
    singleSocket: bit(SNP_POLICY_BIT.SINGLE_SOCKET),
  };
}

/** Little-endian 72-byte r, s -> big-endian 48-byte P1363 r||s. */
export function snpSignatureP1363(r: Buffer, s: Buffer): Buffer {
  for (const [name, v] of [["R", r], ["S", s]] as const) {
    if (!isAllZero(v.subarray(P384_LEN))) throw new EvidenceFormatError(`SEV-SNP signature ${name} has non-zero bytes above 48 bytes`);
  }
  return Buffer.concat([Buffer.from(r.subarray(0, P384_LEN)).reverse(), Buffer.from(s.subarray(0, P384_LEN)).reverse()]);
}

// VCEK extensions (OID arc 1.3.6.1.4.1.3704.1).
const AMD_OID = "1.3.6.1.4.1.3704.1";
export const VCEK_OID = {
  productName: `${AMD_OID}.2`,
  blSPL: `${AMD_OID}.3.1`,
  teeSPL: `${AMD_OID}.3.2`,
  snpSPL: `${AMD_OID}.3.3`,
  ucodeSPL: `${AMD_OID}.3.8`,
  fmcSPL: `${AMD_OID}.3.9`,
  hwID: `${AMD_OID}.4`,
} as const;
const HWID_LEN = 64;

export interface VcekInfo {
  productName: string;
  product?: SnpProduct;
  bl: number;
  tee: number;
  snp: number;
  ucode: number;
  fmc?: number;
  hwId?: Buffer;
  subject: string;
}

export function parseVcek(der: Buffer): VcekInfo {
  const f = certFields(der, "VCEK certificate");
  const get = (oid: string) => f.extensions.get(oid)?.value;
  const int = (oid: string, name: string): number => {
    const v = get(oid);
    if (!v) throw new EvidenceFormatError(`VCEK certificate lacks ${name} (${oid})`);
    return decodeSmallInt(parseDer(v, `VCEK ${name}`), `VCEK ${name}`);
  };
  const pn = get(VCEK_OID.productName);
  if (!pn) throw new EvidenceFormatError("VCEK certificate lacks productName (1.3.6.1.4.1.3704.1.2)");
  const productName = content(readNode(pn, 0, pn.length, "VCEK productName")).toString("latin1");
  const product = (["Milan", "Genoa", "Turin"] as const).find((p) => productName.startsWith(p));
  let hwId = get(VCEK_OID.hwID);
  if (hwId && hwId.length === HWID_LEN + 2 && hwId[0] === TAG.OCTET_STRING) hwId = content(expectTag(parseDer(hwId), TAG.OCTET_STRING, "hwID"));
  return {
    productName,
    product,
    bl: int(VCEK_OID.blSPL, "blSPL"),
    tee: int(VCEK_OID.teeSPL, "teeSPL"),
    snp: int(VCEK_OID.snpSPL, "snpSPL"),
    ucode: int(VCEK_OID.ucodeSPL, "ucodeSPL"),
    fmc: get(VCEK_OID.fmcSPL) ? int(VCEK_OID.fmcSPL, "fmcSPL") : undefined,
    hwId,
    subject: parseCert(der, "VCEK").subject.replace(/\n/g, ", "),
  };
}

export interface SnpVerifyOptions {
  now?: Date;
  allowDebug?: boolean;
  /** Force a product family (otherwise taken from the VCEK productName). */
  product?: SnpProduct;
  /** Override the pinned ARK / ASK (tests show that a wrong root fails). */
  arkPem?: string;
  askPem?: string;
  /**
   * AMD's CRL for the product (DER, KDS `/vcek/v1/{product}/crl`), signed by the ARK. With it the ASK and the VCEK
   * are checked for revocation (checks amdCrlValid, askNotRevoked, vcekNotRevoked); without it the verdict says
   * that revocation was not checked (details.revocationChecked false) and policies that require it refuse.
   */
  crl?: Buffer;
}

/** Parses AMD's product CRL and checks its signature by `arkPem` and its validity window at `now`. */
export function verifyAmdCrl(der: Buffer, arkPem: string, now: Date, product = "AMD"): Crl {
  const what = `AMD ${product} CRL`;
  const crl = parseCrl(der, what);
  verifyCrlSignature(crl, parseCert(splitPem(arkPem)[0] ?? Buffer.alloc(0), `AMD ${product} ARK`), what);
  checkCrlFresh(crl, now, what);
  return crl;
}

export interface SnpVerdict extends Verdict {
  platform: "sev-snp";
  report?: SnpReport;
}

function emptyVerdict(errors: string[]): SnpVerdict {
  return { platform: "sev-snp", verified: false, status: "Invalid", insecure: false, measurements: {}, imageDigest: "", reportData: "", errors, checks: {}, advisoryIds: [], details: {} };
}

/** The facts SEV-SNP policy rules need (policy.ts checkSnpPolicy), from a verified SEV-SNP verdict. */
export function snpPolicyFacts(v: Verdict): { reported: TcbVersion; current: TcbVersion; committed: TcbVersion; launch: TcbVersion; revocationChecked: boolean } | undefined {
  if (v.platform !== "sev-snp") return undefined;
  const d = v.details as { reportedTcb?: TcbVersion; currentTcb?: TcbVersion; committedTcb?: TcbVersion; launchTcb?: TcbVersion; revocationChecked?: boolean };
  if (!d.reportedTcb || !d.currentTcb || !d.committedTcb || !d.launchTcb) return undefined;
  return { reported: d.reportedTcb, current: d.currentTcb, committed: d.committedTcb, launch: d.launchTcb, revocationChecked: d.revocationChecked === true };
}

/** Reads a VCEK given as DER or PEM. */
export function vcekDer(input: Buffer): Buffer {
  const pems = splitPem(input);
  return pems.length > 0 ? pems[0] : input;
}

export function verifySnpReport(reportBytes: Uint8Array, vcekInput: Buffer, opts: SnpVerifyOptions = {}): SnpVerdict {
  const now = opts.now ?? new Date();
  let rep: SnpReport;
  try {
    rep = parseSnpReport(reportBytes);
  } catch (e) {
    return emptyVerdict([errorText(e)]);
  }
  const cl = new CheckList();
  const vder = vcekDer(vcekInput);
  const vcek = cl.run("vcekFormat", () => parseVcek(vder));
  const product = opts.product ?? vcek?.product ?? "Milan";
  const testRoots = opts.arkPem === undefined && opts.askPem === undefined ? testAmdRootsFor(vder) : undefined;
  const roots = testRoots ?? AMD_ROOTS[product];
  const arkPem = opts.arkPem ?? roots.ark;
  const askPem = opts.askPem ?? roots.ask;
  cl.run("arkSelfSigned", () => {
    const ark = parseCert(splitPem(arkPem)[0] ?? Buffer.alloc(0), `AMD ${product} ARK`);
    if (!ark.checkIssued(ark) || !ark.verify(ark.publicKey)) throw new Error(`AMD ${product} ARK is not self-signed`);
  });
  cl.run("askSignedByArk", () => verifyChainToRoot(splitPem(askPem), arkPem, now, `AMD ${product} ASK`));
  let vcekCert: X509Certificate | undefined;
  cl.run("vcekSignedByAsk", () => {
    vcekCert = verifyChainToRoot([vder, ...splitPem(askPem)], arkPem, now, `AMD ${product} VCEK`)[0];
  });
  cl.run("reportSigByVcek", () => {
    if (!vcekCert) throw new Error("report signature not checked: the VCEK is not trusted");
    if (rep.sigAlgo !== SNP_SIG_ALGO_ECDSA_P384_SHA384) throw new Error(`SEV-SNP signature algorithm ${rep.sigAlgo} is not supported (expected 1, ECDSA P-384)`);
    const key = vcekCert.publicKey;
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "secp384r1") throw new Error("VCEK key is not ECDSA P-384");
    const sig = snpSignatureP1363(rep.signatureR, rep.signatureS);
    if (!cryptoVerify("sha384", rep.raw.subarray(0, SNP_SIGNED_LEN), { key, dsaEncoding: "ieee-p1363" }, sig)) {
      throw new Error("SEV-SNP report signature does not verify with the VCEK (report altered or VCEK of another chip/TCB)");
    }
  });
  const signingKey = (rep.flags >> SIGNING_KEY_SHIFT) & SIGNING_KEY_MASK;
  if (signingKey !== 0) cl.fail("signingKeyIsVcek", `SEV-SNP report is signed by ${SIGNING_KEY_NAMES[signingKey] ?? `key ${signingKey}`}; only VCEK-signed reports are supported`);
  const reported = decodeTcb(rep.reportedTcb, product);
  if (vcek) {
    cl.run("vcekHwIdEqualsChipId", () => {
      if ((rep.flags >> MASK_CHIP_KEY_BIT) & 1) throw new Error("SEV-SNP report has MASK_CHIP_KEY set: CHIP_ID is hidden, the VCEK cannot be tied to the chip");
      if (!vcek.hwId || !vcek.hwId.equals(rep.chipId)) throw new Error(`VCEK hwID ${vcek.hwId ? hex(vcek.hwId).slice(0, 16) : "(none)"}... is not this report's CHIP_ID ${hex(rep.chipId).slice(0, 16)}...`);
    });
    cl.run("vcekTcbEqualsReportedTcb", () => {
      const same = vcek.bl === reported.bootloader && vcek.tee === reported.tee && vcek.snp === reported.snp && vcek.ucode === reported.microcode && (product !== "Turin" || vcek.fmc === reported.fmc);
      if (!same) {
        throw new Error(`VCEK was issued for TCB bl=${vcek.bl} tee=${vcek.tee} snp=${vcek.snp} ucode=${vcek.ucode}, but the report's REPORTED_TCB is bl=${reported.bootloader} tee=${reported.tee} snp=${reported.snp} ucode=${reported.microcode}; fetch the VCEK for this TCB`);
      }
    });
  }
  let revocationChecked = false;
  if (opts.crl) {
    const crl = cl.run("amdCrlValid", () => verifyAmdCrl(opts.crl as Buffer, arkPem, now, product));
    if (crl) {
      revocationChecked = true;
      cl.run("askNotRevoked", () => {
        const serial = certFields(splitPem(askPem)[0] ?? Buffer.alloc(0), "ASK").serialHex;
        if (crl.revoked.has(serial)) throw new Error(`AMD ${product} ASK (serial ${serial}) is revoked by AMD's CRL: no report signed under it can be trusted`);
      });
      cl.run("vcekNotRevoked", () => {
        const serial = certFields(vder, "VCEK").serialHex;
        if (crl.revoked.has(serial)) throw new Error(`VCEK (serial ${serial}) is revoked by AMD's CRL`);
      });
    }
  }
  const pflags = snpPolicyFlags(rep.policy);
  if (pflags.debug && !opts.allowDebug) cl.fail("debugOff", "SEV-SNP guest policy allows DEBUG: the host can read guest memory. Debug guests are refused unless the policy sets allowDebug");
  const verified = cl.allPassed;
  return {
    platform: "sev-snp",
    verified,
    status: verified ? "Verified" : "Invalid",
    insecure: testRoots !== undefined,
    ...(testRoots ? { testRoot: true } : {}),
    measurements: { measurement: hex(rep.measurement), hostData: hex(rep.hostData), familyId: hex(rep.familyId), imageId: hex(rep.imageId) },
    imageDigest: snpImageDigest(rep),
    reportData: hex(rep.reportData),
    errors: cl.errors,
    ...(opts.crl ? {} : { warnings: ["no AMD CRL was given: the ASK and VCEK were not checked for revocation"] }),
    checks: cl.checks,
    advisoryIds: [],
    details: {
      revocationChecked,
      version: rep.version,
      product,
      guestSvn: rep.guestSvn,
      policy: `0x${rep.policy.toString(16)}`,
      policyFlags: pflags,
      vmpl: rep.vmpl,
      signingKey: SIGNING_KEY_NAMES[signingKey] ?? String(signingKey),
      currentTcb: decodeTcb(rep.currentTcb, product),
      reportedTcb: reported,
      committedTcb: decodeTcb(rep.committedTcb, product),
      launchTcb: decodeTcb(rep.launchTcb, product),
      chipId: hex(rep.chipId),
      reportId: hex(rep.reportId),
      currentVersion: rep.currentVersion,
      vcek: vcek && { productName: vcek.productName, subject: vcek.subject, bl: vcek.bl, tee: vcek.tee, snp: vcek.snp, ucode: vcek.ucode },
    },
    report: rep,
  };
}
