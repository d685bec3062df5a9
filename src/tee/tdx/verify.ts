// Intel TDX quote verification on node:crypto (notes/attestation.md 1.5):
//  1. strict parse (quote.ts);  2. PCK chain to the pinned Intel SGX Root CA;  3. QE report signed by the PCK key;
//  4. QE REPORTDATA = SHA-256(attestation key || QE auth data) || 32 zero bytes;  5. quote signature by the
//  attestation key;  6. collateral: TCB info / QE identity signatures and chains, root and PCK CRLs (signature,
//  freshness, revocation), FMSPC/PCE-ID match;  7. QE identity;  8. Intel TCB status;  9. TD attributes (debug).
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject, type X509Certificate } from "node:crypto";
import { isTestIntelRoot, trustedIntelRootFor } from "../roots/test-roots.js";
import { toHex as hex, isAllZero } from "../../crypto/bytes.js";
import { errorText } from "../errors.js";
import { checkCrlFresh, parseCrl, verifyCrlSignature, type Crl } from "../crl.js";
import { CheckList, type Verdict } from "../verdict.js";
import { certFields, splitPem, subjectCN, verifyChainToRoot } from "../x509.js";
import {
  QeIdentitySchema,
  TcbInfoSchema,
  collateralBytes,
  parseCollateral,
  parseSignedJson,
  type QeIdentity,
  type QuoteCollateralV3,
  type TcbInfo,
} from "./collateral.js";
import { parsePckExtension, type PckInfo } from "./pck.js";
import { INTEL_QE_VENDOR_ID, parseTdxQuote, tdAttributeFlags, tdxMeasurements, type TdxQuote, type TdReport } from "./quote.js";
import { REJECTED_TCB_STATUSES, evaluateTdxTcb, moduleIdentityId, qeTcbStatus, type TcbEvaluation } from "./tcb.js";

export interface TdxVerifyOptions {
  /** QuoteCollateralV3 (object or JSON text). Without it the TCB status cannot be judged and verified=false. */
  collateral?: QuoteCollateralV3 | string | Buffer;
  /** Evaluation time; defaults to the wall clock. Tests always pass a fixed time. */
  now?: Date;
  /** Accept TDs with the DEBUG attribute (never in production). */
  allowDebug?: boolean;
  /** Refuse collateral older than this TCB evaluation data number (rollback protection). */
  minTcbEvaluationDataNumber?: number;
  /** Refuse a quote with non-zero bytes after its signature data (by default they are ignored with a warning). */
  refuseTrailingBytes?: boolean;
  /** Override of the pinned root (tests use this to show that a wrong root fails). */
  rootPem?: string;
}

export interface TdxVerdict extends Verdict {
  platform: "tdx";
  quote?: TdxQuote;
  tcb?: TcbEvaluation;
}

const QE_REPORT_DATA_HASH_LEN = 32;
const ECDSA_COORD_LEN = 32;

/** Raw P-256 point x||y (64 bytes) -> KeyObject. */
export function p256KeyFromRaw(xy: Buffer): KeyObject {
  return createPublicKey({
    key: {
      kty: "EC",
      crv: "P-256",
      x: xy.subarray(0, ECDSA_COORD_LEN).toString("base64url"),
      y: xy.subarray(ECDSA_COORD_LEN, 2 * ECDSA_COORD_LEN).toString("base64url"),
    },
    format: "jwk",
  });
}

export function p1363(alg: string, data: Buffer, key: KeyObject | X509Certificate["publicKey"], sig: Buffer): boolean {
  return cryptoVerify(alg, data, { key, dsaEncoding: "ieee-p1363" }, sig);
}

/** SHA-256 over MRTD, MRCONFIGID, MROWNER, MROWNERCONFIG, RTMR0-3 (the original Cocoon's image hash). */
export function tdxImageDigest(b: Pick<TdReport, "mrTd" | "mrConfigId" | "mrOwner" | "mrOwnerConfig" | "rtmr">): string {
  const h = createHash("sha256");
  for (const part of [b.mrTd, b.mrConfigId, b.mrOwner, b.mrOwnerConfig, ...b.rtmr]) h.update(part);
  return h.digest("hex");
}

function checkWindow(issueDate: string, nextUpdate: string, now: Date, what: string): void {
  const issued = new Date(issueDate);
  const next = new Date(nextUpdate);
  if (Number.isNaN(issued.getTime()) || Number.isNaN(next.getTime())) throw new Error(`${what} has invalid issueDate/nextUpdate`);
  if (now < issued) throw new Error(`${what} is not yet valid at ${now.toISOString()} (issued ${issueDate})`);
  if (now > next) throw new Error(`${what} expired at ${nextUpdate} (evaluated at ${now.toISOString()}); fetch fresh collateral from a PCCS`);
}

function maskedEqual(actual: Buffer, expectedHex: string, maskHex: string): boolean {
  const exp = Buffer.from(expectedHex, "hex");
  const mask = Buffer.from(maskHex, "hex");
  if (exp.length !== actual.length || mask.length !== actual.length) return false;
  for (let i = 0; i < actual.length; i++) if ((actual[i] & mask[i]) !== (exp[i] & mask[i])) return false;
  return true;
}

function u32le(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

/** Returns a message naming the first certificate whose serial the CRL lists, or undefined. */
export function findRevoked(crl: Crl | undefined, certs: (X509Certificate | undefined)[]): string | undefined {
  if (!crl) return undefined;
  for (const c of certs) {
    if (!c) continue;
    const serial = certFields(Buffer.from(c.raw), "certificate").serialHex;
    if (crl.revoked.has(serial)) return `certificate "${subjectCN(c)}" (serial ${serial}) is revoked by its issuer's CRL`;
  }
  return undefined;
}

function emptyVerdict(errors: string[]): TdxVerdict {
  return {
    platform: "tdx",
    verified: false,
    status: "Invalid",
    insecure: false,
    measurements: {},
    imageDigest: "",
    reportData: "",
    errors,
    checks: {},
    advisoryIds: [],
    details: {},
  };
}

export function verifyTdxQuote(input: Uint8Array, opts: TdxVerifyOptions = {}): TdxVerdict {
  const now = opts.now ?? new Date();
  let q: TdxQuote;
  try {
    q = parseTdxQuote(input);
  } catch (e) {
    return emptyVerdict([errorText(e)]);
  }
  // Intel's pinned root, unless test code installed a test root and this chain ends in it (then: insecure).
  const rootPem = opts.rootPem ?? trustedIntelRootFor(splitPem(q.pckChainPem));
  const testRoot = opts.rootPem === undefined && isTestIntelRoot(rootPem);
  const cl = new CheckList();
  const body = q.body;
  const flags = tdAttributeFlags(body.tdAttributes);

  // PCK chain (leaf, intermediate, root) to the pinned root.
  const chainDer = splitPem(q.pckChainPem);
  const chain = cl.run("pckChainToIntelRoot", () => {
    if (chainDer.length < 2) throw new Error(`TDX quote: PCK chain has ${chainDer.length} certificate(s); expected leaf, intermediate CA and root`);
    return verifyChainToRoot(chainDer, rootPem, now, "PCK");
  });
  const pckLeaf = chain?.[0];
  let pck: PckInfo | undefined;
  if (pckLeaf) pck = cl.run("pckExtension", () => parsePckExtension(Buffer.from(pckLeaf.raw)));
  cl.run("qeReportSigByPck", () => {
    if (!pckLeaf) throw new Error("QE report signature not checked: no trusted PCK certificate");
    if (!p1363("sha256", q.qeReport.raw, pckLeaf.publicKey, q.qeReportSignature)) {
      throw new Error("QE report signature does not verify with the PCK certificate key (QE report altered or wrong PCK)");
    }
  });
  cl.run("qeReportDataBindsAttKey", () => {
    const expect = createHash("sha256").update(q.attestationKey).update(q.qeAuthData).digest();
    const rd = q.qeReport.reportData;
    if (!rd.subarray(0, QE_REPORT_DATA_HASH_LEN).equals(expect) || !isAllZero(rd.subarray(QE_REPORT_DATA_HASH_LEN))) {
      throw new Error("QE report data does not bind the attestation key (expected SHA-256(attestation key || QE auth data) || zeros)");
    }
  });
  cl.run("quoteSigByAttKey", () => {
    let key: KeyObject;
    try {
      key = p256KeyFromRaw(q.attestationKey);
    } catch {
      throw new Error("TDX quote: attestation key is not a valid P-256 point");
    }
    if (!p1363("sha256", q.signedRegion, key, q.signature)) {
      throw new Error("TDX quote signature does not verify with the attestation key (header or TD report altered)");
    }
  });
  if (hex(q.qeVendorId) !== INTEL_QE_VENDOR_ID) cl.fail("qeVendorIsIntel", `TDX quote: QE vendor id ${hex(q.qeVendorId)} is not Intel's`);
  if (!isAllZero(body.seamAttributes)) cl.fail("seamAttributesZero", `TDX quote: SEAMATTRIBUTES ${hex(body.seamAttributes)} must be zero`);
  const warnings: string[] = [];
  if (q.trailing.nonZero) {
    const what = `TDX quote has ${q.trailing.length} non-zero byte(s) after its signature data; no signature covers them`;
    if (opts.refuseTrailingBytes) cl.fail("noTrailingBytes", `${what}, and the policy refuses such quotes`);
    else warnings.push(`${what}, so they were ignored`);
  }
  if (flags.debug && !opts.allowDebug) {
    cl.fail("debugOff", "TD has the DEBUG attribute set: its memory is readable by the host. Debug TDs are refused unless the policy sets allowDebug");
  }

  // Collateral.
  let tcb: TcbEvaluation | undefined;
  let tcbInfo: TcbInfo | undefined;
  let qeId: QeIdentity | undefined;
  let status = "NoCollateral";
  const details: Record<string, unknown> = {
    quoteVersion: q.version,
    bodyType: q.bodyType,
    quoteLen: q.quoteLen,
    teeTcbSvn: hex(body.teeTcbSvn),
    teeTcbSvn2: body.teeTcbSvn2 ? hex(body.teeTcbSvn2) : undefined,
    tdAttributes: hex(body.tdAttributes),
    xfam: hex(body.xfam),
    tdAttributeFlags: flags,
    fmspc: pck?.fmspc,
    pceSvn: pck?.pceSvn,
    pckTcbComponents: pck?.tcbComponents,
    qe: {
      mrSigner: hex(q.qeReport.mrSigner),
      mrEnclave: hex(q.qeReport.mrEnclave),
      isvProdId: q.qeReport.isvProdId,
      isvSvn: q.qeReport.isvSvn,
    },
  };
  if (opts.collateral === undefined) {
    cl.errors.push("no collateral given: the TCB status (and revocation) cannot be judged; pass the QuoteCollateralV3 JSON (--collateral FILE)");
  } else {
    const col = cl.run("collateralFormat", () =>
      typeof opts.collateral === "object" && !Buffer.isBuffer(opts.collateral) ? parseCollateral(opts.collateral) : parseCollateral(opts.collateral!),
    );
    if (col) {
      const tcbChain = cl.run("tcbInfoChain", () => verifyChainToRoot(splitPem(col.tcb_info_issuer_chain), rootPem, now, "TCB info signing"));
      cl.run("tcbInfoSig", () => {
        if (!tcbChain) throw new Error("TCB info signature not checked: its issuer chain is not trusted");
        if (!p1363("sha256", Buffer.from(col.tcb_info, "utf8"), tcbChain[0].publicKey, collateralBytes(col.tcb_info_signature, "tcb_info_signature"))) {
          throw new Error("TCB info signature does not verify (tcb_info altered or re-serialized)");
        }
      });
      const qeChain = cl.run("qeIdentityChain", () => verifyChainToRoot(splitPem(col.qe_identity_issuer_chain), rootPem, now, "QE identity signing"));
      cl.run("qeIdentitySig", () => {
        if (!qeChain) throw new Error("QE identity signature not checked: its issuer chain is not trusted");
        if (!p1363("sha256", Buffer.from(col.qe_identity, "utf8"), qeChain[0].publicKey, collateralBytes(col.qe_identity_signature, "qe_identity_signature"))) {
          throw new Error("QE identity signature does not verify (qe_identity altered or re-serialized)");
        }
      });
      tcbInfo = cl.run("tcbInfoFormat", () => {
        const t = parseSignedJson(col.tcb_info, TcbInfoSchema, "TCB info");
        if (t.id !== "TDX" || t.version !== 3) throw new Error(`TCB info is ${t.id} version ${t.version}; a TDX quote needs id "TDX", version 3`);
        return t;
      });
      qeId = cl.run("qeIdentityFormat", () => {
        const t = parseSignedJson(col.qe_identity, QeIdentitySchema, "QE identity");
        if (t.id !== "TD_QE") throw new Error(`QE identity id is ${t.id}; a TDX quote needs "TD_QE"`);
        return t;
      });
      cl.run("collateralFresh", () => {
        if (tcbInfo) checkWindow(tcbInfo.issueDate, tcbInfo.nextUpdate, now, "TCB info");
        if (qeId) checkWindow(qeId.issueDate, qeId.nextUpdate, now, "QE identity");
      });
      if (opts.minTcbEvaluationDataNumber !== undefined) {
        cl.run("tcbEvaluationDataNumber", () => {
          for (const [what, n] of [["TCB info", tcbInfo?.tcbEvaluationDataNumber], ["QE identity", qeId?.tcbEvaluationDataNumber]] as const) {
            if (n !== undefined && n < opts.minTcbEvaluationDataNumber!) {
              throw new Error(`${what} tcbEvaluationDataNumber ${n} is below the required minimum ${opts.minTcbEvaluationDataNumber} (stale collateral)`);
            }
          }
        });
      }
      // CRLs.
      const root = chain?.[chain.length - 1];
      const rootCrl = cl.run("root_ca_crlParse", () => parseCrl(collateralBytes(col.root_ca_crl, "root_ca_crl"), "root CA CRL"));
      const pckCrl = cl.run("pck_crlParse", () => parseCrl(collateralBytes(col.pck_crl, "pck_crl"), "PCK CRL"));
      const rootCert = root ?? tcbChain?.[tcbChain.length - 1];
      cl.run("root_ca_crlSig", () => {
        if (!rootCrl || !rootCert) throw new Error("root CA CRL not checked: no trusted root");
        verifyCrlSignature(rootCrl, rootCert, "root CA CRL");
      });
      cl.run("root_ca_crlFresh", () => rootCrl && checkCrlFresh(rootCrl, now, "root CA CRL"));
      const pckCrlChain = cl.run("pck_crlIssuerChain", () => verifyChainToRoot(splitPem(col.pck_crl_issuer_chain), rootPem, now, "PCK CRL issuer"));
      cl.run("pck_crlSig", () => {
        if (!pckCrl || !pckCrlChain) throw new Error("PCK CRL not checked: its issuer chain is not trusted");
        if (chain && chain[1].fingerprint256 !== pckCrlChain[0].fingerprint256) {
          throw new Error(`PCK CRL is issued by "${subjectCN(pckCrlChain[0])}", but the PCK certificate is issued by "${subjectCN(chain[1])}"`);
        }
        verifyCrlSignature(pckCrl, pckCrlChain[0], "PCK CRL");
      });
      cl.run("pck_crlFresh", () => pckCrl && checkCrlFresh(pckCrl, now, "PCK CRL"));
      cl.run("noneRevoked", () => {
        const hit = findRevoked(pckCrl, [chain?.[0]]) ?? findRevoked(rootCrl, [chain?.[1], tcbChain?.[0], qeChain?.[0], pckCrlChain?.[0]]);
        if (hit) throw new Error(hit);
      });
      if (tcbInfo && pck) {
        cl.run("fmspcMatches", () => {
          if (tcbInfo!.fmspc.toUpperCase() !== pck!.fmspc || tcbInfo!.pceId.toUpperCase() !== pck!.pceId) {
            throw new Error(`TCB info is for FMSPC ${tcbInfo!.fmspc} / PCE ${tcbInfo!.pceId}, but the platform is FMSPC ${pck!.fmspc} / PCE ${pck!.pceId}; fetch the TCB info for this FMSPC`);
          }
        });
      }
      let qeStatus: { status: string; advisoryIds: string[] } | undefined;
      if (qeId) {
        const id = qeId;
        cl.run("qeIdentityMatches", () => {
          const r = q.qeReport;
          if (hex(r.mrSigner) !== id.mrsigner.toLowerCase()) throw new Error(`QE MRSIGNER ${hex(r.mrSigner)} is not Intel's TD QE signer ${id.mrsigner}`);
          if (r.isvProdId !== id.isvprodid) throw new Error(`QE ISVPRODID ${r.isvProdId} differs from ${id.isvprodid}`);
          if (!maskedEqual(u32le(r.miscSelect), Buffer.from(id.miscselect, "hex").reverse().toString("hex"), Buffer.from(id.miscselectMask, "hex").reverse().toString("hex"))) {
            throw new Error(`QE MISCSELECT ${r.miscSelect.toString(16)} does not match the QE identity`);
          }
          if (!maskedEqual(r.attributes, id.attributes, id.attributesMask)) throw new Error(`QE attributes ${hex(r.attributes)} do not match the QE identity`);
        });
        qeStatus = qeTcbStatus(id, q.qeReport.isvSvn);
      }
      if (tcbInfo) {
        const info = tcbInfo;
        cl.run("tdxModuleSigner", () => {
          const useIdentity = body.teeTcbSvn[1] > 0;
          const ident = useIdentity ? info.tdxModuleIdentities?.find((m) => m.id.toUpperCase() === moduleIdentityId(body.teeTcbSvn)) : undefined;
          const ref = ident ?? info.tdxModule;
          if (!ref) throw new Error("TCB info has no TDX module identity to check MRSIGNERSEAM against");
          if (hex(body.mrSignerSeam) !== ref.mrsigner.toLowerCase()) throw new Error(`MRSIGNERSEAM ${hex(body.mrSignerSeam)} is not the expected TDX module signer`);
          if (!maskedEqual(body.seamAttributes, ref.attributes, ref.attributesMask)) throw new Error(`SEAMATTRIBUTES ${hex(body.seamAttributes)} do not match the TDX module identity`);
        });
      }
      if (tcbInfo && pck && qeStatus) {
        tcb = evaluateTdxTcb({ tcbInfo, pck, teeTcbSvn: body.teeTcbSvn, teeTcbSvn2: body.teeTcbSvn2, qe: qeStatus });
        status = tcb.status;
        if (REJECTED_TCB_STATUSES.has(tcb.status)) cl.errors.push(`TCB status ${tcb.status}${tcb.reason ? `: ${tcb.reason}` : ""}`);
      }
      details.qeTcbStatus = qeStatus?.status;
      details.platformTcbStatus = tcb?.status;
      details.tcbEvaluationDataNumber = tcbInfo?.tcbEvaluationDataNumber;
      details.tcbDate = tcb?.tcbDate;
    }
  }
  // Any failed check makes the whole quote Invalid; the TCB status stays visible in details.platformTcbStatus.
  if (Object.values(cl.checks).some((v) => !v)) status = "Invalid";
  const verified = cl.allPassed && tcb !== undefined && !REJECTED_TCB_STATUSES.has(tcb.status);
  return {
    platform: "tdx",
    verified,
    status,
    insecure: testRoot,
    ...(testRoot ? { testRoot: true } : {}),
    measurements: tdxMeasurements(body),
    imageDigest: tdxImageDigest(body),
    reportData: hex(body.reportData),
    errors: cl.errors,
    ...(warnings.length ? { warnings } : {}),
    checks: cl.checks,
    advisoryIds: tcb?.advisoryIds ?? [],
    details,
    quote: q,
    tcb,
  };
}
